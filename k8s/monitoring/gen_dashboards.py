#!/usr/bin/env python3
#   gen_dashboards - writes the four Grafana dashboards of the platform docs from one table
#   SPDX-License-Identifier: MPL-2.0
#
#   system health, service performance, business metrics, error tracking:
#   vizmesh-<name>.json beside this script. Panels read the daemons' own
#   metrics and the telemetry sink's aggregates (docs/services/telemetry.md,
#   "Metrics"); take max() of sink gauges across its replicas.
#   Run after editing: python3 k8s/monitoring/gen_dashboards.py
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, title, kind, unit, exprs, x, y, w=12, h=8, desc=""):
    p = {
        "id": pid, "type": kind, "title": title, "description": desc or title, "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l, "datasource": DS}
                    for i, (e, l) in enumerate(exprs)],
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    if kind == "table":
        p["options"] = {"showHeader": True}
        for t in p["targets"]:
            t["format"] = "table"
            t["instant"] = True
    return p


def dashboard(uid, title, panels):
    return {
        "uid": uid, "title": title, "tags": ["vizmesh", "telemetry"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "editable": True,
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "annotations": {"list": []},
        "panels": [dict(p, id=i + 1) for i, p in enumerate(panels)],
    }


boards = {
    "system-health": dashboard("vizmesh-system-health", "vizmesh: system health", [
        panel(0, "Targets up by component", "stat", "none",
              [('sum by (component) (up{job="vizmesh"})', "{{component}}")], 0, 0, 24, 5),
        panel(0, "Workers per service (broker)", "timeseries", "none",
              [("max by (service) (vz_telemetry_broker_workers)", "{{service}}")], 0, 5),
        # The brokers' own gauge, summed: the sink's vz_telemetry_broker_queue
        # is the answer of whichever broker it asked, one of several.
        panel(0, "Broker queue depth per service (all brokers)", "timeseries", "none",
              [('sum by (service) (vz_broker_queue_depth{job="vizmesh"})', "{{service}}")], 12, 5),
        panel(0, "CPU per pod (cores)", "timeseries", "none",
              [('sum by (pod) (rate(process_cpu_seconds_total{job="vizmesh"}[$__rate_interval]))', "{{pod}}")], 0, 13),
        panel(0, "Resident memory per pod", "timeseries", "bytes",
              [('max by (pod) (process_resident_memory_bytes{job="vizmesh"})', "{{pod}}")], 12, 13),
        panel(0, "Telemetry events dropped (never waited for)", "timeseries", "ops",
              [('sum by (component) (rate(vz_event_dropped_total{job="vizmesh"}[$__rate_interval]))', "{{component}}")], 0, 21),
        panel(0, "Deploy freeze", "stat", "none", [("max(vz_telemetry_deploy_freeze)", "freeze")], 12, 21, 12, 8),
    ]),
    "service-performance": dashboard("vizmesh-service-performance", "vizmesh: service performance", [
        panel(0, "Requests per second by service", "timeseries", "reqps",
              [("max by (service) (vz_telemetry_requests_per_second)", "{{service}}")], 0, 0),
        panel(0, "p99 latency by service (1 % relative error)", "timeseries", "s",
              [("max by (service) (vz_telemetry_latency_p99_seconds)", "{{service}}")], 12, 0),
        panel(0, "Gateway latency p50 / p95 / p99", "timeseries", "s",
              [(f'histogram_quantile({q}, sum by (le) (rate(vz_gateway_request_duration_seconds_bucket[$__rate_interval])))', f"p{int(q * 100)}")
               for q in (0.5, 0.95, 0.99)], 0, 8),
        panel(0, "Gateway traffic by route", "timeseries", "reqps",
              [("sum by (route) (rate(vz_gateway_requests_total[$__rate_interval]))", "{{route}}")], 12, 8),
        panel(0, "SLO error budget remaining", "timeseries", "percentunit",
              [("max by (slo) (vz_telemetry_slo_budget_remaining)", "{{slo}}")], 0, 16),
        panel(0, "SLO burn rate over 1 h", "timeseries", "none",
              [("max by (slo) (vz_telemetry_slo_burn_rate_1h)", "{{slo}}")], 12, 16),
    ]),
    "business-metrics": dashboard("vizmesh-business-metrics", "vizmesh: business metrics", [
        panel(0, "Active users (DAU / WAU / MAU)", "stat", "none",
              [('max(vz_telemetry_active_users{window="day"})', "DAU"),
               ('max(vz_telemetry_active_users{window="week"})', "WAU"),
               ('max(vz_telemetry_active_users{window="month"})', "MAU")], 0, 0, 24, 5),
        panel(0, "Active users over time", "timeseries", "none",
              [("max by (window) (vz_telemetry_active_users)", "{{window}}")], 0, 5),
        panel(0, "API calls by route", "timeseries", "reqps",
              [("sum by (route) (rate(vz_gateway_requests_total[$__rate_interval]))", "{{route}}")], 12, 5),
        panel(0, "Sign-ups and logins (auth routes, 2xx)", "timeseries", "reqps",
              [('sum by (route) (rate(vz_gateway_requests_total{route=~"auth_register|auth_login", status=~"2.."}[$__rate_interval]))', "{{route}}")], 0, 13),
        panel(0, "Billing webhooks by outcome", "timeseries", "ops",
              [('sum by (route, status) (rate(vz_gateway_requests_total{route=~"billing.*"}[$__rate_interval]))', "{{route}} {{status}}")], 12, 13),
    ]),
    "error-tracking": dashboard("vizmesh-error-tracking", "vizmesh: error tracking", [
        panel(0, "Error ratio by service (5 min)", "timeseries", "percentunit",
              [("max by (service) (vz_telemetry_error_ratio)", "{{service}}")], 0, 0),
        panel(0, "Gateway responses by status class", "timeseries", "reqps",
              [('sum by (status) (rate(vz_gateway_requests_total{status=~"[45].."}[$__rate_interval]))', "{{status}}")], 12, 0),
        panel(0, "Worker errors by service and outcome", "timeseries", "ops",
              [('sum by (service, outcome) (rate(vz_worker_requests_total{outcome=~"error|internal"}[$__rate_interval]))', "{{service}} {{outcome}}")], 0, 8),
        panel(0, "SLO alerts firing", "table", "none",
              [("max by (slo, severity) (vz_telemetry_alert_firing) == 1", "")], 12, 8),
        panel(0, "Synthetic checks by outcome", "timeseries", "ops",
              [("sum by (outcome) (rate(vz_telemetry_synthetic_total[$__rate_interval]))", "{{outcome}}")], 0, 16),
        panel(0, "Notifications to the dead letters", "timeseries", "ops",
              [("sum by (channel) (rate(vz_notifier_dead_total[$__rate_interval]))", "{{channel}}")], 12, 16),
    ]),
}
here = os.path.dirname(os.path.abspath(__file__))
for name, board in boards.items():
    with open(os.path.join(here, f"vizmesh-{name}.json"), "w") as f:
        json.dump(board, f, indent=1)
        f.write("\n")
print("wrote", ", ".join(f"vizmesh-{n}.json" for n in boards))
