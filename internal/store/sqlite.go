package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// migrations are applied in order; schema_version holds how many ran.
// Append only: never edit a migration that has shipped.
var migrations = []string{
	`CREATE TABLE conversations (
		principal TEXT NOT NULL,
		id        TEXT NOT NULL,
		created   INTEGER NOT NULL,
		last_used INTEGER NOT NULL,
		data      BLOB NOT NULL,
		PRIMARY KEY (principal, id)
	) WITHOUT ROWID;
	CREATE INDEX conversations_last_used ON conversations (last_used);
	CREATE TABLE executions (
		principal TEXT NOT NULL,
		id        TEXT NOT NULL,
		seq       INTEGER NOT NULL,
		data      BLOB NOT NULL,
		PRIMARY KEY (principal, id, seq)
	) WITHOUT ROWID;
	CREATE TABLE tool_uses (
		tool TEXT PRIMARY KEY,
		n    INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE cousage (
		a TEXT NOT NULL,
		b TEXT NOT NULL,
		n INTEGER NOT NULL,
		PRIMARY KEY (a, b)
	) WITHOUT ROWID;
	CREATE INDEX cousage_rank ON cousage (a, n DESC);
	CREATE TABLE tool_specs (
		server  TEXT PRIMARY KEY,
		specs   BLOB NOT NULL,
		updated INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE vectors (
		model TEXT NOT NULL,
		key   TEXT NOT NULL,
		vec   BLOB NOT NULL,
		PRIMARY KEY (model, key)
	) WITHOUT ROWID;`,
}

// sqliteStore keeps everything in one SQLite file in WAL mode.
//
// It uses one connection: nearly every call writes (reads refresh the idle
// TTL), SQLite allows one writer at a time, and queueing in database/sql is
// cheaper than SQLite's busy sleeping. Other processes on the same file are
// serialized by BEGIN IMMEDIATE transactions and a 5 s busy timeout.
type sqliteStore struct {
	db   *sql.DB
	path string
	opts Options
}

func openSQLite(ctx context.Context, path string, opts Options) (Store, error) {
	if rest, ok := strings.CutPrefix(path, "~"); ok && (rest == "" || rest[0] == '/') {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("store: sqlite %q: %w", path, err)
		}
		path = filepath.Join(home, rest)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("store: sqlite %q: path must be absolute (sqlite:///abs/path.db)", path)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: sqlite %q: path must not contain '?' or '#'", path)
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	// Create the file ourselves so it is private; SQLite gives the -wal and
	// -shm files the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	f.Close()

	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %q: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &sqliteStore{db: db, path: path, opts: opts}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqliteStore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: sqlite %s: %s: %w", s.path, op, err)
}

func (s *sqliteStore) migrate(ctx context.Context) error {
	return s.tx(ctx, "migrate", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this conductor knows (%d): upgrade the conductor", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			s.opts.Logger.Info("store: migrated", "path", s.path, "version", i+1)
		}
		_, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations))
		return err
	})
}

// tx runs fn in an immediate transaction (the DSN sets _txlock).
func (s *sqliteStore) tx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return s.wrap(op, tx.Commit())
}

// cutoff is the oldest last_used that is still alive.
func (s *sqliteStore) cutoff(now int64) int64 {
	if s.opts.ConversationTTL <= 0 {
		return 0
	}
	return now - s.opts.ConversationTTL.Milliseconds()
}

func (s *sqliteStore) GetConversation(ctx context.Context, principal, id string) (*Conversation, error) {
	if err := checkKey(principal, id); err != nil {
		return nil, err
	}
	now := nowMS()
	var created int64
	var data []byte
	err := s.db.QueryRowContext(ctx,
		`UPDATE conversations SET last_used = ?
		 WHERE principal = ? AND id = ? AND last_used >= ?
		 RETURNING created, data`,
		now, principal, id, s.cutoff(now)).Scan(&created, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.wrap("get conversation", err)
	}
	return decodeConversation(principal, id, created, now, data)
}

func decodeConversation(principal, id string, created, lastUsed int64, data []byte) (*Conversation, error) {
	c := &Conversation{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("store: decode conversation: %w", err)
	}
	c.Principal, c.ID = principal, id
	c.Created, c.LastUsed = msTime(created), msTime(lastUsed)
	return c, nil
}

func (s *sqliteStore) PutConversation(ctx context.Context, c *Conversation) error {
	if err := checkKey(c.Principal, c.ID); err != nil {
		return err
	}
	return s.tx(ctx, "put conversation", func(tx *sql.Tx) error {
		now := nowMS()
		if err := s.dropIfStale(ctx, tx, c.Principal, c.ID, now); err != nil {
			return err
		}
		return s.write(ctx, tx, c, now)
	})
}

// dropIfStale deletes a conversation idle past the TTL that nobody swept,
// so that its history does not leak into a new conversation of that id.
func (s *sqliteStore) dropIfStale(ctx context.Context, tx *sql.Tx, principal, id string, now int64) error {
	if s.opts.ConversationTTL <= 0 {
		return nil
	}
	res, err := tx.ExecContext(ctx,
		`DELETE FROM conversations WHERE principal = ? AND id = ? AND last_used < ?`,
		principal, id, s.cutoff(now))
	if err != nil {
		return s.wrap("drop stale", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM executions WHERE principal = ? AND id = ?`, principal, id)
	}
	return s.wrap("drop stale", err)
}

func (s *sqliteStore) write(ctx context.Context, tx *sql.Tx, c *Conversation, now int64) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode conversation: %w", err)
	}
	created := now
	if !c.Created.IsZero() {
		created = c.Created.UnixMilli()
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO conversations (principal, id, created, last_used, data) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (principal, id) DO UPDATE SET created = excluded.created,
		   last_used = excluded.last_used, data = excluded.data`,
		c.Principal, c.ID, created, now, data)
	return s.wrap("put conversation", err)
}

func (s *sqliteStore) UpdateConversation(ctx context.Context, principal, id string, fn func(*Conversation) error) error {
	if err := checkKey(principal, id); err != nil {
		return err
	}
	return s.tx(ctx, "update conversation", func(tx *sql.Tx) error {
		now := nowMS()
		if err := s.dropIfStale(ctx, tx, principal, id, now); err != nil {
			return err
		}
		var created, lastUsed int64
		var data []byte
		err := tx.QueryRowContext(ctx,
			`SELECT created, last_used, data FROM conversations WHERE principal = ? AND id = ?`,
			principal, id).Scan(&created, &lastUsed, &data)
		var c *Conversation
		switch {
		case errors.Is(err, sql.ErrNoRows):
			c = &Conversation{Principal: principal, ID: id}
		case err != nil:
			return s.wrap("update conversation", err)
		default:
			if c, err = decodeConversation(principal, id, created, lastUsed, data); err != nil {
				return err
			}
		}
		if err := fn(c); err != nil {
			return err
		}
		c.Principal, c.ID = principal, id
		return s.write(ctx, tx, c, now)
	})
}

func (s *sqliteStore) DeleteConversation(ctx context.Context, principal, id string) error {
	if err := checkKey(principal, id); err != nil {
		return err
	}
	return s.tx(ctx, "delete conversation", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM conversations WHERE principal = ? AND id = ?`, principal, id); err != nil {
			return s.wrap("delete conversation", err)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE principal = ? AND id = ?`, principal, id)
		return s.wrap("delete conversation", err)
	})
}

func (s *sqliteStore) ExpireConversations(ctx context.Context, idleBefore time.Time, maxKept int) ([]ConversationRef, error) {
	var refs []ConversationRef
	err := s.tx(ctx, "expire conversations", func(tx *sql.Tx) error {
		refs = refs[:0]
		scan := func(q string, args ...any) error {
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var r ConversationRef
				var lu int64
				if err := rows.Scan(&r.Principal, &r.ID, &lu); err != nil {
					return err
				}
				r.LastUsed = msTime(lu)
				refs = append(refs, r)
			}
			return rows.Err()
		}
		cut := idleBefore.UnixMilli()
		if err := scan(`SELECT principal, id, last_used FROM conversations WHERE last_used < ?`, cut); err != nil {
			return s.wrap("expire conversations", err)
		}
		if maxKept > 0 {
			// The newest maxKept of the rest survive.
			if err := scan(`SELECT principal, id, last_used FROM conversations WHERE last_used >= ?
				ORDER BY last_used DESC, principal DESC, id DESC LIMIT -1 OFFSET ?`, cut, maxKept); err != nil {
				return s.wrap("expire conversations", err)
			}
		}
		for _, r := range refs {
			for _, q := range []string{
				`DELETE FROM conversations WHERE principal = ? AND id = ?`,
				`DELETE FROM executions WHERE principal = ? AND id = ?`,
			} {
				if _, err := tx.ExecContext(ctx, q, r.Principal, r.ID); err != nil {
					return s.wrap("expire conversations", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortRefs(refs)
	return refs, nil
}

func sortRefs(refs []ConversationRef) {
	sort.SliceStable(refs, func(i, j int) bool {
		if !refs[i].LastUsed.Equal(refs[j].LastUsed) {
			return refs[i].LastUsed.Before(refs[j].LastUsed)
		}
		if refs[i].Principal != refs[j].Principal {
			return refs[i].Principal < refs[j].Principal
		}
		return refs[i].ID < refs[j].ID
	})
}

func (s *sqliteStore) AppendExecution(ctx context.Context, principal, id string, e Execution) error {
	if err := checkKey(principal, id); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: encode execution: %w", err)
	}
	return s.tx(ctx, "append execution", func(tx *sql.Tx) error {
		now := nowMS()
		res, err := tx.ExecContext(ctx,
			`UPDATE conversations SET last_used = ? WHERE principal = ? AND id = ? AND last_used >= ?`,
			now, principal, id, s.cutoff(now))
		if err != nil {
			return s.wrap("append execution", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		var seq int64
		if err := tx.QueryRowContext(ctx,
			`SELECT COALESCE(MAX(seq), 0) + 1 FROM executions WHERE principal = ? AND id = ?`,
			principal, id).Scan(&seq); err != nil {
			return s.wrap("append execution", err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO executions (principal, id, seq, data) VALUES (?, ?, ?, ?)`,
			principal, id, seq, data); err != nil {
			return s.wrap("append execution", err)
		}
		_, err = tx.ExecContext(ctx,
			`DELETE FROM executions WHERE principal = ? AND id = ? AND seq <= ?`,
			principal, id, seq-int64(s.opts.MaxExecutions))
		return s.wrap("append execution", err)
	})
}

func (s *sqliteStore) Executions(ctx context.Context, principal, id string) ([]Execution, error) {
	if err := checkKey(principal, id); err != nil {
		return nil, err
	}
	var out []Execution
	err := s.tx(ctx, "executions", func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx,
			`SELECT 1 FROM conversations WHERE principal = ? AND id = ? AND last_used >= ?`,
			principal, id, s.cutoff(nowMS())).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return s.wrap("executions", err)
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT data FROM executions WHERE principal = ? AND id = ? ORDER BY seq`, principal, id)
		if err != nil {
			return s.wrap("executions", err)
		}
		defer rows.Close()
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				return s.wrap("executions", err)
			}
			var e Execution
			if err := json.Unmarshal(data, &e); err != nil {
				return fmt.Errorf("store: decode execution: %w", err)
			}
			out = append(out, e)
		}
		return s.wrap("executions", rows.Err())
	})
	return out, err
}

func (s *sqliteStore) AddCoUsage(ctx context.Context, tools []string) error {
	set := coUsageSet(tools)
	if len(set) == 0 {
		return nil
	}
	return s.tx(ctx, "add co-usage", func(tx *sql.Tx) error {
		for _, t := range set {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO tool_uses (tool, n) VALUES (?, 1) ON CONFLICT (tool) DO UPDATE SET n = n + 1`, t); err != nil {
				return s.wrap("add co-usage", err)
			}
		}
		if len(set) < 2 {
			return nil
		}
		st, err := tx.PrepareContext(ctx,
			`INSERT INTO cousage (a, b, n) VALUES (?, ?, 1) ON CONFLICT (a, b) DO UPDATE SET n = n + 1`)
		if err != nil {
			return s.wrap("add co-usage", err)
		}
		defer st.Close()
		for _, a := range set {
			for _, b := range set {
				if a == b {
					continue
				}
				if _, err := st.ExecContext(ctx, a, b); err != nil {
					return s.wrap("add co-usage", err)
				}
			}
		}
		return nil
	})
}

func (s *sqliteStore) CoUsage(ctx context.Context, tool string, limit int) (Usage, error) {
	u := Usage{Tool: tool}
	err := s.db.QueryRowContext(ctx, `SELECT n FROM tool_uses WHERE tool = ?`, tool).Scan(&u.Uses)
	if errors.Is(err, sql.ErrNoRows) {
		return u, nil
	}
	if err != nil {
		return u, s.wrap("co-usage", err)
	}
	if limit <= 0 {
		return u, nil
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT c.b, c.n, COALESCE(u.n, 0) FROM cousage c LEFT JOIN tool_uses u ON u.tool = c.b
		 WHERE c.a = ? ORDER BY c.n DESC, c.b LIMIT ?`, tool, limit)
	if err != nil {
		return u, s.wrap("co-usage", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Pair
		if err := rows.Scan(&p.Tool, &p.Together, &p.Uses); err != nil {
			return u, s.wrap("co-usage", err)
		}
		u.Partners = append(u.Partners, p)
	}
	return u, s.wrap("co-usage", rows.Err())
}

func (s *sqliteStore) PutToolSpecs(ctx context.Context, server string, specs []byte) error {
	if err := checkName("server", server); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO tool_specs (server, specs, updated) VALUES (?, ?, ?)
		 ON CONFLICT (server) DO UPDATE SET specs = excluded.specs, updated = excluded.updated`,
		server, nonNil(specs), nowMS())
	return s.wrap("put tool specs", err)
}

func (s *sqliteStore) ToolSpecs(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT server, specs FROM tool_specs`)
	if err != nil {
		return nil, s.wrap("tool specs", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var server string
		var specs []byte
		if err := rows.Scan(&server, &specs); err != nil {
			return nil, s.wrap("tool specs", err)
		}
		out[server] = nonNil(specs)
	}
	return out, s.wrap("tool specs", rows.Err())
}

func (s *sqliteStore) PutVectors(ctx context.Context, model string, vectors map[string][]byte) error {
	if err := checkName("model", model); err != nil {
		return err
	}
	if len(vectors) == 0 {
		return nil
	}
	return s.tx(ctx, "put vectors", func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx,
			`INSERT INTO vectors (model, key, vec) VALUES (?, ?, ?)
			 ON CONFLICT (model, key) DO UPDATE SET vec = excluded.vec`)
		if err != nil {
			return s.wrap("put vectors", err)
		}
		defer st.Close()
		for k, v := range vectors {
			if _, err := st.ExecContext(ctx, model, k, nonNil(v)); err != nil {
				return s.wrap("put vectors", err)
			}
		}
		return nil
	})
}

func (s *sqliteStore) Vectors(ctx context.Context, model string, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	const chunk = 500
	for len(keys) > 0 {
		n := min(len(keys), chunk)
		part := keys[:n]
		keys = keys[n:]
		args := make([]any, 0, n+1)
		args = append(args, model)
		for _, k := range part {
			args = append(args, k)
		}
		q := `SELECT key, vec FROM vectors WHERE model = ? AND key IN (?` + strings.Repeat(", ?", n-1) + `)`
		if err := func() error {
			rows, err := s.db.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var k string
				var v []byte
				if err := rows.Scan(&k, &v); err != nil {
					return err
				}
				out[k] = nonNil(v)
			}
			return rows.Err()
		}(); err != nil {
			return nil, s.wrap("vectors", err)
		}
	}
	return out, nil
}

func (s *sqliteStore) Ping(ctx context.Context) error {
	return s.wrap("ping", s.db.PingContext(ctx))
}

func (s *sqliteStore) Close() error {
	return s.wrap("close", s.db.Close())
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
