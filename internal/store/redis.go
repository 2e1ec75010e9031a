package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisSchema is the layout version of the keys below, kept in
// <ns>version so that an older conductor refuses a newer layout.
const redisSchema = 1

// Key layout, under the namespace ns (default "conductor:"). A conversation
// is named by its member, hex(principal) ":" hex(id): hex keeps any
// principal or id from colliding with another or reaching outside its key.
//
//	ns conv:<member>   string  JSON of the Conversation      sliding TTL
//	ns hist:<member>   list    JSON of Executions, last N    same TTL
//	ns convs           zset    member -> last use (ms)       swept by ExpireConversations
//	ns uses            zset    tool -> use count
//	ns co:<tool>       zset    partner -> times used together
//	ns specs           hash    server -> tool specs
//	ns vec:<model>     hash    key -> vector
//	ns version         string  redisSchema
//
// The Lua scripts derive conv:/hist: keys from members, so this layout
// serves a single Redis (with replicas), not Redis Cluster.
type redisStore struct {
	c    *redis.Client
	addr string
	ns   string
	opts Options
}

// Client timeouts: a Redis that is down must fail calls fast, not hang them.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = 3 * time.Second
	redisMaxAttempts = 100 // UpdateConversation attempts under contention
)

func openRedis(ctx context.Context, rawURL string, opts Options) (Store, error) {
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		// A *url.Error quotes the whole URL, password included: keep only
		// its cause.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("store: redis %s: %w", Redact(rawURL), err)
	}
	if ro.DialTimeout == 0 {
		ro.DialTimeout = redisDialTimeout
	}
	if ro.ReadTimeout == 0 {
		ro.ReadTimeout = redisIOTimeout
	}
	if ro.WriteTimeout == 0 {
		ro.WriteTimeout = redisIOTimeout
	}
	if ro.PoolTimeout == 0 {
		ro.PoolTimeout = redisIOTimeout
	}
	if ro.MaxRetries == 0 {
		ro.MaxRetries = 1
	}
	if ro.DialerRetries == 0 {
		ro.DialerRetries = 2
		ro.DialerRetryTimeout = 50 * time.Millisecond
	}
	ro.ContextTimeoutEnabled = true
	s := &redisStore{c: redis.NewClient(ro), addr: ro.Addr, ns: opts.Namespace, opts: opts}
	if err := s.checkVersion(ctx); err != nil {
		s.c.Close()
		return nil, err
	}
	return s, nil
}

func (s *redisStore) checkVersion(ctx context.Context) error {
	key := s.ns + "version"
	if err := s.c.SetNX(ctx, key, redisSchema, 0).Err(); err != nil {
		return s.wrap("open", err)
	}
	v, err := s.c.Get(ctx, key).Int()
	if err != nil {
		return s.wrap("open", err)
	}
	if v > redisSchema {
		return s.wrap("open", fmt.Errorf("key layout version %d is newer than this conductor knows (%d): upgrade the conductor", v, redisSchema))
	}
	return nil
}

func (s *redisStore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: redis %s: %s: %w", s.addr, op, err)
}

func member(principal, id string) string {
	return hex.EncodeToString([]byte(principal)) + ":" + hex.EncodeToString([]byte(id))
}

func parseMember(m string) (principal, id string, ok bool) {
	hp, hi, ok := strings.Cut(m, ":")
	if !ok {
		return "", "", false
	}
	p, err1 := hex.DecodeString(hp)
	i, err2 := hex.DecodeString(hi)
	return string(p), string(i), err1 == nil && err2 == nil
}

func (s *redisStore) convKey(m string) string { return s.ns + "conv:" + m }
func (s *redisStore) histKey(m string) string { return s.ns + "hist:" + m }
func (s *redisStore) indexKey() string        { return s.ns + "convs" }

func (s *redisStore) ttlMS() int64 { return s.opts.ConversationTTL.Milliseconds() }

// getScript reads a conversation and marks it used.
var getScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return v
`)

func (s *redisStore) GetConversation(ctx context.Context, principal, id string) (*Conversation, error) {
	if err := checkKey(principal, id); err != nil {
		return nil, err
	}
	m := member(principal, id)
	now := nowMS()
	data, err := getScript.Run(ctx, s.c,
		[]string{s.convKey(m), s.histKey(m), s.indexKey()},
		s.ttlMS(), now, m).Text()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.wrap("get conversation", err)
	}
	c := &Conversation{}
	if err := json.Unmarshal([]byte(data), c); err != nil {
		return nil, fmt.Errorf("store: decode conversation: %w", err)
	}
	c.Principal, c.ID, c.LastUsed = principal, id, msTime(now)
	c.Created = c.Created.UTC()
	return c, nil
}

// queueWrite queues the writes of c (used now) on pipe.
func (s *redisStore) queueWrite(ctx context.Context, pipe redis.Pipeliner, c *Conversation, now int64) error {
	cc := *c
	if cc.Created.IsZero() {
		cc.Created = msTime(now)
	} else {
		cc.Created = msTime(cc.Created.UnixMilli())
	}
	cc.LastUsed = msTime(now)
	data, err := json.Marshal(&cc)
	if err != nil {
		return fmt.Errorf("store: encode conversation: %w", err)
	}
	m := member(c.Principal, c.ID)
	ttl := s.opts.ConversationTTL
	pipe.Set(ctx, s.convKey(m), data, ttl)
	if ttl > 0 {
		pipe.PExpire(ctx, s.histKey(m), ttl)
	}
	pipe.ZAdd(ctx, s.indexKey(), redis.Z{Score: float64(now), Member: m})
	return nil
}

func (s *redisStore) PutConversation(ctx context.Context, c *Conversation) error {
	if err := checkKey(c.Principal, c.ID); err != nil {
		return err
	}
	_, err := s.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		return s.queueWrite(ctx, pipe, c, nowMS())
	})
	return s.wrap("put conversation", err)
}

func (s *redisStore) UpdateConversation(ctx context.Context, principal, id string, fn func(*Conversation) error) error {
	if err := checkKey(principal, id); err != nil {
		return err
	}
	key := s.convKey(member(principal, id))
	var fnErr error
	txf := func(tx *redis.Tx) error {
		c := &Conversation{}
		data, err := tx.Get(ctx, key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(data, c); err != nil {
				return fmt.Errorf("decode conversation: %w", err)
			}
			c.Created = c.Created.UTC()
		}
		c.Principal, c.ID = principal, id
		if err := fn(c); err != nil {
			fnErr = err
			return err
		}
		c.Principal, c.ID = principal, id
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			return s.queueWrite(ctx, pipe, c, nowMS())
		})
		return err
	}
	for attempt := 1; ; attempt++ {
		err := s.c.Watch(ctx, txf, key)
		if fnErr != nil {
			return fnErr
		}
		if !errors.Is(err, redis.TxFailedErr) {
			return s.wrap("update conversation", err)
		}
		if attempt == redisMaxAttempts {
			s.opts.Logger.Warn("store: update conversation gave up", "attempts", attempt)
			return s.wrap("update conversation", ErrConflict)
		}
		// Back off a little, with jitter, so that racing writers spread out.
		d := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(200*time.Microsecond)))
		select {
		case <-ctx.Done():
			return s.wrap("update conversation", ctx.Err())
		case <-time.After(d):
		}
	}
}

func (s *redisStore) DeleteConversation(ctx context.Context, principal, id string) error {
	if err := checkKey(principal, id); err != nil {
		return err
	}
	m := member(principal, id)
	_, err := s.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, s.convKey(m), s.histKey(m))
		pipe.ZRem(ctx, s.indexKey(), m)
		return nil
	})
	return s.wrap("delete conversation", err)
}

// expireScript removes members idle before ARGV[1], then the oldest beyond
// ARGV[2] (when > 0), with their keys; it returns member, score pairs.
var expireScript = redis.NewScript(`
local idx, ns = KEYS[1], ARGV[3]
local out = {}
local function drop(list)
  for i = 1, #list, 2 do
    local m = list[i]
    redis.call('DEL', ns .. 'conv:' .. m, ns .. 'hist:' .. m)
    redis.call('ZREM', idx, m)
    table.insert(out, m)
    table.insert(out, list[i + 1])
  end
end
drop(redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. ARGV[1], 'WITHSCORES'))
local keep = tonumber(ARGV[2])
if keep > 0 then
  local n = redis.call('ZCARD', idx)
  if n > keep then
    drop(redis.call('ZRANGE', idx, 0, n - keep - 1, 'WITHSCORES'))
  end
end
return out
`)

func (s *redisStore) ExpireConversations(ctx context.Context, idleBefore time.Time, maxKept int) ([]ConversationRef, error) {
	res, err := expireScript.Run(ctx, s.c, []string{s.indexKey()},
		idleBefore.UnixMilli(), maxKept, s.ns).StringSlice()
	if err != nil {
		return nil, s.wrap("expire conversations", err)
	}
	refs := make([]ConversationRef, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		p, id, ok := parseMember(res[i])
		if !ok {
			s.opts.Logger.Warn("store: dropped malformed conversation index entry")
			continue
		}
		score, _ := strconv.ParseFloat(res[i+1], 64)
		refs = append(refs, ConversationRef{Principal: p, ID: id, LastUsed: msTime(int64(score))})
	}
	sortRefs(refs)
	return refs, nil
}

var appendScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
`)

func (s *redisStore) AppendExecution(ctx context.Context, principal, id string, e Execution) error {
	if err := checkKey(principal, id); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: encode execution: %w", err)
	}
	m := member(principal, id)
	n, err := appendScript.Run(ctx, s.c,
		[]string{s.convKey(m), s.histKey(m), s.indexKey()},
		data, s.opts.MaxExecutions, s.ttlMS(), nowMS(), m).Int()
	if err != nil {
		return s.wrap("append execution", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *redisStore) Executions(ctx context.Context, principal, id string) ([]Execution, error) {
	if err := checkKey(principal, id); err != nil {
		return nil, err
	}
	m := member(principal, id)
	var exists *redis.IntCmd
	var list *redis.StringSliceCmd
	_, err := s.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		exists = pipe.Exists(ctx, s.convKey(m))
		list = pipe.LRange(ctx, s.histKey(m), 0, -1)
		return nil
	})
	if err != nil {
		return nil, s.wrap("executions", err)
	}
	if exists.Val() == 0 {
		return nil, ErrNotFound
	}
	var out []Execution
	for _, raw := range list.Val() {
		var e Execution
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("store: decode execution: %w", err)
		}
		e.Started = e.Started.UTC()
		out = append(out, e)
	}
	return out, nil
}

func (s *redisStore) AddCoUsage(ctx context.Context, tools []string) error {
	set := coUsageSet(tools)
	if len(set) == 0 {
		return nil
	}
	_, err := s.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, a := range set {
			pipe.ZIncrBy(ctx, s.ns+"uses", 1, a)
			for _, b := range set {
				if a != b {
					pipe.ZIncrBy(ctx, s.ns+"co:"+a, 1, b)
				}
			}
		}
		return nil
	})
	return s.wrap("add co-usage", err)
}

func (s *redisStore) CoUsage(ctx context.Context, tool string, limit int) (Usage, error) {
	u := Usage{Tool: tool}
	var uses *redis.FloatCmd
	var partners *redis.ZSliceCmd
	_, err := s.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		uses = pipe.ZScore(ctx, s.ns+"uses", tool)
		if limit > 0 {
			partners = pipe.ZRevRangeWithScores(ctx, s.ns+"co:"+tool, 0, int64(limit-1))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return u, s.wrap("co-usage", err)
	}
	u.Uses = int64(uses.Val())
	if partners == nil || len(partners.Val()) == 0 {
		return u, nil
	}
	names := make([]string, len(partners.Val()))
	for i, z := range partners.Val() {
		names[i] = z.Member.(string)
		u.Partners = append(u.Partners, Pair{Tool: names[i], Together: int64(z.Score)})
	}
	scores, err := s.c.ZMScore(ctx, s.ns+"uses", names...).Result()
	if err != nil {
		return u, s.wrap("co-usage", err)
	}
	for i := range u.Partners {
		if i < len(scores) {
			u.Partners[i].Uses = int64(scores[i])
		}
	}
	return u, nil
}

func (s *redisStore) PutToolSpecs(ctx context.Context, server string, specs []byte) error {
	if err := checkName("server", server); err != nil {
		return err
	}
	return s.wrap("put tool specs", s.c.HSet(ctx, s.ns+"specs", server, nonNil(specs)).Err())
}

func (s *redisStore) ToolSpecs(ctx context.Context) (map[string][]byte, error) {
	all, err := s.c.HGetAll(ctx, s.ns+"specs").Result()
	if err != nil {
		return nil, s.wrap("tool specs", err)
	}
	out := make(map[string][]byte, len(all))
	for k, v := range all {
		out[k] = []byte(v)
	}
	return out, nil
}

func (s *redisStore) PutVectors(ctx context.Context, model string, vectors map[string][]byte) error {
	if err := checkName("model", model); err != nil {
		return err
	}
	if len(vectors) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(vectors))
	for k, v := range vectors {
		args = append(args, k, nonNil(v))
	}
	return s.wrap("put vectors", s.c.HSet(ctx, s.ns+"vec:"+model, args...).Err())
}

func (s *redisStore) Vectors(ctx context.Context, model string, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := s.c.HMGet(ctx, s.ns+"vec:"+model, keys...).Result()
	if err != nil {
		return nil, s.wrap("vectors", err)
	}
	for i, v := range vals {
		if str, ok := v.(string); ok {
			out[keys[i]] = []byte(str)
		}
	}
	return out, nil
}

func (s *redisStore) Ping(ctx context.Context) error {
	return s.wrap("ping", s.c.Ping(ctx).Err())
}

func (s *redisStore) Close() error {
	return s.wrap("close", s.c.Close())
}
