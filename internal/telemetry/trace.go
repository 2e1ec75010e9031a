package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing exports trace spans over OTLP/HTTP to endpoint, a collector's base
// URL ("http://collector:4318", as in OTEL_EXPORTER_OTLP_ENDPOINT; the path
// /v1/traces is added) or its full traces URL. Spans are batched. The
// returned tracer goes to conductor.Options.Tracer; call shutdown after the
// conductor is closed, to flush what is left (bounded by ctx).
func Tracing(endpoint, version string) (tr trace.Tracer, shutdown func(context.Context) error, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("OTLP endpoint %q is not an http or https URL", endpoint)
	}
	if !strings.HasSuffix(u.Path, "/v1/traces") {
		u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
	}
	// New does no I/O: a collector that is down costs dropped spans, not a
	// failed start.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(u.String()),
		otlptracehttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "mcp-conductor"),
			attribute.String("service.version", version))),
	)
	return tp.Tracer("github.com/mcp-conductor/conductor"), tp.Shutdown, nil
}
