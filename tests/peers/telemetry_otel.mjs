// telemetry_otel - the real OpenTelemetry SDK sends spans to the mesh's OTLP/HTTP endpoint
// SPDX-License-Identifier: MPL-2.0
//
// Usage: node telemetry_otel.mjs GATEWAY_URL TOKEN
// Starts a parent span and a child span with @opentelemetry/sdk-trace-node,
// exports them with @opentelemetry/exporter-trace-otlp-http (JSON) to
// GATEWAY_URL/v1/traces with the bearer TOKEN, then calls GATEWAY_URL/v1/echo
// inside the child span with its traceparent, so the gateway's and echo's
// spans join the same trace. Prints {"trace_id", "parent", "child"}.
import { NodeTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { context, trace } from "@opentelemetry/api";

const [gw, token] = process.argv.slice(2);
const exporter = new OTLPTraceExporter({
  url: `${gw}/v1/traces`,
  headers: { Authorization: `Bearer ${token}` },
});
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "otel-client" }),
  spanProcessors: [new BatchSpanProcessor(exporter)],
});
const tracer = provider.getTracer("vizmesh-test");
const parent = tracer.startSpan("checkout");
const ctx = trace.setSpan(context.active(), parent);
const child = tracer.startSpan("call echo", undefined, ctx);
const sc = child.spanContext();
const traceparent = `00-${sc.traceId}-${sc.spanId}-01`;
const r = await fetch(`${gw}/v1/echo`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, traceparent, "Content-Type": "application/json" },
  body: "{}",
});
if (r.status !== 200) throw new Error(`echo answered ${r.status}`);
child.end();
parent.end();
await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ trace_id: sc.traceId, parent: parent.spanContext().spanId, child: sc.spanId }));
