// k8s_tool.mjs - build a kustomization the simple way and validate every object it yields
// SPDX-License-Identifier: MPL-2.0
//
//   node k8s_tool.mjs build DIR          print the objects of DIR/kustomization.yaml (YAML stream)
//   node k8s_tool.mjs validate FILE...   validate every document; exit 1 on any problem
//   node k8s_tool.mjs same A B           exit 1 unless two YAML streams hold the same objects
//   node k8s_tool.mjs names FILE...      metric names used in PromQL of rule files / dashboards
//   node k8s_tool.mjs hash FILE          kustomize's name hash of every ConfigMap/Secret in FILE
//   node k8s_tool.mjs prometheusrule RULES   the PrometheusRule of a Prometheus rule file (YAML)
//   node k8s_tool.mjs scrapes APP MON      every pod prometheus.yml scrapes in APP, a ServiceMonitor of MON scrapes too
//   node k8s_tool.mjs refs FILE          "Kind/name RefKind refname [optional]" per ConfigMap/Secret reference
//
// build implements the kustomize features k8s/ uses, nothing more: resources
// (files and directories), namespace, images, replicas, JSON 6902 patches with
// a kind/name(regex) target, configMapGenerator and secretGenerator (files,
// envs, literals; generatorOptions labels and disableNameSuffixHash). It
// refuses any other key, so the test fails instead of silently diverging.
// When kubectl kustomize (kustomize >= 4) exists, the test compares both.
//
// Name hashes as kustomize makes them (api/hasher): after the whole build,
// each generated object is renamed NAME-HASH, where HASH is the SHA-256 of
// Go's json.Marshal of {data, kind, name} (+ binaryData of a ConfigMap when
// it is a map; + type, and stringData when a map, of a Secret), its first 10
// hex digits with 0,1,3,a,e spelled g,h,k,m,t. "name" is always "" there:
// the hasher looks up the one field called "metadata/name", which no object
// has (kubectl kustomize v5.5 agrees). Then every reference to the
// old name in a pod template (envFrom, valueFrom, volumes, projected
// sources, imagePullSecrets) and in an Ingress' tls is rewritten.
// test_k8s_hash.sh checks goHash against the expected values of
// kustomize's own hasher_test.go.
//
// validate runs kubernetes-models' schema check, then rejects field names the
// schema does not know (the package itself lets misspellings through): the
// field tables are read from the package's .d.ts declarations. ServiceMonitor
// and PrometheusRule (monitoring.coreos.com/v1) the same way, with
// @kubernetes-models/prometheus-operator (the operator's CRD schemas).
import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const KNOWN = new Set(["apiVersion", "kind", "resources", "namespace", "images", "replicas",
    "patches", "configMapGenerator", "secretGenerator", "generatorOptions"]);
const GEN_KEYS = new Set(["name", "files", "envs", "literals", "type", "options"]);
const NEEDS_HASH = new WeakSet(); // generated objects whose name gets the hash suffix
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding",
    "PersistentVolume", "StorageClass", "CustomResourceDefinition"]);

function fail(msg) { console.error(`k8s_tool: ${msg}`); process.exit(1); }

function readDocs(file) {
    return YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => {
        if (d.errors.length) fail(`${file}: ${d.errors[0].message}`);
        return d.toJS();
    }).filter((o) => o);
}

function pointer(p) { return p.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~")); }

function applyOp(obj, op, where) {
    const keys = pointer(op.path);
    const last = keys.pop();
    let parent = obj;
    for (const k of keys) {
        parent = parent?.[Array.isArray(parent) ? Number(k) : k];
        if (parent === undefined) fail(`${where}: path ${op.path} not found`);
    }
    const idx = Array.isArray(parent) ? (last === "-" ? parent.length : Number(last)) : last;
    if (op.op === "add") {
        if (Array.isArray(parent)) parent.splice(idx, 0, op.value); else parent[idx] = op.value;
    } else if (op.op === "replace" || op.op === "remove") {
        if (!(idx in parent)) fail(`${where}: ${op.op} ${op.path}: nothing there`);
        if (op.op === "replace") parent[idx] = op.value;
        else if (Array.isArray(parent)) parent.splice(idx, 1); else delete parent[idx];
    } else fail(`${where}: unsupported op ${op.op}`);
}

// ------------------------------------------------------------ kustomize hash
// A string as Go's encoding/json writes it: HTML-safe (<, >, & and U+2028/9
// as \u escapes), \n \r \t short, other control characters \u00XX. \b and
// \f changed form in Go 1.22, so they are refused rather than guessed.
function goString(s) {
    let out = '"';
    for (const ch of s) {
        const c = ch.codePointAt(0);
        if (ch === '"' || ch === "\\") out += "\\" + ch;
        else if (ch === "\n") out += "\\n";
        else if (ch === "\r") out += "\\r";
        else if (ch === "\t") out += "\\t";
        else if (c === 8 || c === 12) fail("\\b or \\f in a hashed value: Go versions disagree on its form");
        else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029)
            out += "\\u" + c.toString(16).padStart(4, "0");
        else out += ch;
    }
    return out + '"';
}

// json.Marshal of what json.Unmarshal gives (maps, slices, strings, float64,
// bools, nil): map keys sorted bytewise.
function goJson(v) {
    if (v === null || v === undefined) return "null";
    if (typeof v === "string") return goString(v);
    if (typeof v === "boolean") return String(v);
    if (typeof v === "number") {
        if (!Number.isFinite(v) || !Number.isInteger(v) || Math.abs(v) >= 1e21) fail(`cannot hash number ${v} as Go would`);
        return String(v);
    }
    if (Array.isArray(v)) return `[${v.map(goJson).join(",")}]`;
    const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return `{${keys.map((k) => `${goString(k)}:${goJson(v[k])}`).join(",")}}`;
}

// kustomize's hash of a ConfigMap or Secret (api/hasher Hash/encode).
function kustomizeHash(o) {
    const isMap = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
    const orEmpty = (x) => (x === undefined || x === null ? "" : x);
    //  name: "" whatever the object's (see the file's header).
    const m = { kind: o.kind, name: orEmpty(o["metadata/name"]), data: orEmpty(o.data) };
    if (o.kind === "ConfigMap") {
        if (isMap(o.binaryData)) m.binaryData = o.binaryData;
    } else if (o.kind === "Secret") {
        m.type = orEmpty(o.type);
        if (isMap(o.stringData)) m.stringData = o.stringData;
    } else fail(`no name hash for kind ${o.kind}`);
    const hex = createHash("sha256").update(goJson(m), "utf8").digest("hex");
    const map = { 0: "g", 1: "h", 3: "k", a: "m", e: "t" };
    return [...hex.slice(0, 10)].map((c) => map[c] || c).join("");
}

// ----------------------------------------------------------------- generators
// KEY=VALUE lines as kustomize reads an env file: leading blanks dropped,
// blank and # lines skipped, the value verbatim. Quoted values and keys
// without "=" (taken from kustomize's own environment) are refused.
function envPairs(text, where) {
    const pairs = [];
    text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.replace(/^\s+/, "");
        if (!line || line.startsWith("#")) return;
        const eq = line.indexOf("=");
        if (eq <= 0) fail(`${where}:${i + 1}: expected KEY=VALUE`);
        const [key, value] = [line.slice(0, eq), line.slice(eq + 1)];
        if (!/^[A-Za-z_.-][A-Za-z0-9_.-]*$/.test(key)) fail(`${where}:${i + 1}: bad key ${key}`);
        if (/^["']/.test(value)) fail(`${where}:${i + 1}: quoted value (kustomize versions differ)`);
        pairs.push([key, value]);
    });
    return pairs;
}

function generate(dir, kfile, kind, g, gen) {
    for (const key of Object.keys(g)) if (!GEN_KEYS.has(key)) fail(`${kfile}: generator key ${key} unsupported`);
    if (kind === "ConfigMap" && g.type) fail(`${kfile}: type on a ConfigMap`);
    const pairs = [];
    for (const f of g.files || []) {
        const [key, file] = f.includes("=") ? f.split("=", 2) : [path.basename(f), f];
        const buf = fs.readFileSync(path.join(dir, file));
        const text = buf.toString("utf8");
        if (!Buffer.from(text, "utf8").equals(buf)) fail(`${kfile}: ${file} is not UTF-8 (binaryData unsupported)`);
        pairs.push([key, text]);
    }
    for (const f of g.envs || []) pairs.push(...envPairs(fs.readFileSync(path.join(dir, f), "utf8"), path.join(dir, f)));
    for (const l of g.literals || []) pairs.push(...envPairs(l, `${kfile} literal`));
    const data = {};
    for (const [k, v] of pairs) {
        if (k in data) fail(`${kfile}: ${g.name}: key ${k} twice`);
        data[k] = kind === "Secret" ? Buffer.from(v, "utf8").toString("base64") : v;
    }
    const labels = { ...(gen.labels || {}), ...(g.options?.labels || {}) };
    const annotations = { ...(gen.annotations || {}), ...(g.options?.annotations || {}) };
    const o = { apiVersion: "v1", kind, metadata: { name: g.name,
        ...(Object.keys(labels).length ? { labels } : {}),
        ...(Object.keys(annotations).length ? { annotations } : {}) } };
    if (kind === "Secret") o.type = g.type || "Opaque";
    o.data = data;
    const noHash = g.options?.disableNameSuffixHash ?? gen.disableNameSuffixHash;
    if (noHash !== true) NEEDS_HASH.add(o);
    return o;
}

// Every place a pod template or an Ingress names a ConfigMap or Secret:
// calls visit(kind, holder, key) for each, so holder[key] is the name.
function forEachReference(o, visit) {
    const pod = o.kind === "Pod" ? o.spec : o.kind === "CronJob" ? o.spec?.jobTemplate?.spec?.template?.spec
        : o.spec?.template?.spec;
    if (pod) {
        for (const c of [...(pod.containers || []), ...(pod.initContainers || [])]) {
            for (const e of c.envFrom || []) {
                if (e.configMapRef) visit("ConfigMap", e.configMapRef, "name");
                if (e.secretRef) visit("Secret", e.secretRef, "name");
            }
            for (const e of c.env || []) {
                if (e.valueFrom?.configMapKeyRef) visit("ConfigMap", e.valueFrom.configMapKeyRef, "name");
                if (e.valueFrom?.secretKeyRef) visit("Secret", e.valueFrom.secretKeyRef, "name");
            }
        }
        for (const v of pod.volumes || []) {
            if (v.configMap) visit("ConfigMap", v.configMap, "name");
            if (v.secret) visit("Secret", v.secret, "secretName");
            for (const s of v.projected?.sources || []) {
                if (s.configMap) visit("ConfigMap", s.configMap, "name");
                if (s.secret) visit("Secret", s.secret, "name");
            }
        }
        for (const s of pod.imagePullSecrets || []) visit("Secret", s, "name");
    }
    if (o.kind === "Ingress") for (const t of o.spec?.tls || []) visit("Secret", t, "secretName");
}

// The last step of a build: hash suffixes, then the references follow.
function hashNames(objs) {
    const renamed = new Map(); // "kind/namespace/name" -> new name
    for (const o of objs) {
        if (!NEEDS_HASH.has(o)) continue;
        const name = `${o.metadata.name}-${kustomizeHash(o)}`;
        renamed.set(`${o.kind}/${o.metadata.namespace || ""}/${o.metadata.name}`, name);
        o.metadata.name = name;
    }
    for (const o of objs)
        forEachReference(o, (kind, holder, key) => {
            const to = renamed.get(`${kind}/${o.metadata.namespace || ""}/${holder[key]}`);
            if (to) holder[key] = to;
        });
    return objs;
}

function build(dir, top = true) {
    const kfile = path.join(dir, "kustomization.yaml");
    const k = YAML.parse(fs.readFileSync(kfile, "utf8"));
    for (const key of Object.keys(k)) if (!KNOWN.has(key)) fail(`${kfile}: unsupported key ${key}`);
    let objs = [];
    for (const r of k.resources || []) {
        const p = path.join(dir, r);
        objs.push(...(fs.statSync(p).isDirectory() ? build(p, false) : readDocs(p)));
    }
    const gen = k.generatorOptions || {};
    for (const g of k.configMapGenerator || []) objs.push(generate(dir, kfile, "ConfigMap", g, gen));
    for (const g of k.secretGenerator || []) objs.push(generate(dir, kfile, "Secret", g, gen));
    for (const p of k.patches || []) {
        const t = p.target || {};
        const re = t.name ? new RegExp(`^(?:${t.name})$`) : null;
        const ops = YAML.parse(p.patch);
        let hits = 0;
        for (const o of objs) {
            if ((t.kind && o.kind !== t.kind) || (re && !re.test(o.metadata.name))) continue;
            for (const op of ops) applyOp(o, op, `${kfile} patch on ${o.kind}/${o.metadata.name}`);
            hits++;
        }
        if (!hits) fail(`${kfile}: a patch matches nothing`);
    }
    for (const r of k.replicas || []) {
        const o = objs.find((x) => x.metadata.name === r.name && ["Deployment", "StatefulSet"].includes(x.kind));
        if (!o) fail(`${kfile}: replicas for unknown ${r.name}`);
        o.spec.replicas = r.count;
    }
    for (const img of k.images || []) {
        for (const o of objs) {
            const spec = o.spec?.template?.spec;
            for (const c of [...(spec?.containers || []), ...(spec?.initContainers || [])]) {
                const m = /^([^:@]+)(?::([^@]+))?$/.exec(c.image);
                if (!m || m[1] !== img.name) continue;
                c.image = `${img.newName || m[1]}${img.newTag ? ":" + img.newTag : m[2] ? ":" + m[2] : ""}`;
            }
        }
    }
    if (k.namespace)
        for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
    return top ? hashNames(objs) : objs;
}

// ---------------------------------------------------------------- field tables
// interface name (long form, e.g. IIoK8sApiAppsV1DeploymentSpec) -> {field: type text}
function fieldTables() {
    const tables = new Map();
    const roots = [path.dirname(require.resolve("kubernetes-models/package.json")),
        path.dirname(require.resolve("@kubernetes-models/apimachinery/package.json"))];
    const walk = (d) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) { if (e.name !== "node_modules" && e.name !== "_schemas") walk(p); continue; }
            if (!e.name.endsWith(".d.ts")) continue;
            const src = fs.readFileSync(p, "utf8");
            const cls = /export declare class \w+ extends Model<(\w+)>[^{]*\{([\s\S]*?)\n    constructor/.exec(src);
            const alias = /export \{ (\w+) as (\w+)/.exec(src);
            if (!cls || !alias) continue;
            const fields = {};
            for (const m of cls[2].matchAll(/^    "([^"]+)"\??: (.*)$/gm)) fields[m[1]] = m[2].replace(/;$/, "");
            tables.set(alias[2], { fields, file: p });
        }
    };
    roots.forEach(walk);
    return tables;
}

function checkFields(value, typeName, tables, where, errors) {
    const t = tables.get(typeName);
    if (!t || value === null || typeof value !== "object" || Array.isArray(value)) return;
    for (const [key, v] of Object.entries(value)) {
        if (!(key in t.fields)) { errors.push(`${where}.${key}: unknown field (${typeName.replace(/^IIoK8s/, "")})`); continue; }
        const ty = t.fields[key].trim();
        let m;
        if ((m = /^Array<(I\w+)>$/.exec(ty))) (v || []).forEach((x, i) => checkFields(x, m[1], tables, `${where}.${key}[${i}]`, errors));
        else if ((m = /^(I\w+)$/.exec(ty))) checkFields(v, m[1], tables, `${where}.${key}`, errors);
    }
}

// The prometheus-operator models (monitoring.coreos.com) declare their
// fields inline, one nested type literal per interface: read it into a tree
// {fields: {name: subtree|null}, any: subtree|null|undefined} by its braces.
const CRD_PACKAGES = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };
// CRDs checked by their package's JSON schema only (KEDA's models name their
// nested types in other files; the manifest test checks the fields it uses).
const CRD_SCHEMA_ONLY = { "keda.sh": "@kubernetes-models/keda" };
function inlineTable(src, iface) {
    const start = src.indexOf(`export interface ${iface} {`);
    if (start < 0) return null;
    const root = { fields: {} };
    const stack = [root];
    for (const line of src.slice(start).split("\n").slice(1)) {
        const top = stack[stack.length - 1];
        let m;
        if ((m = /^\s*(?:"([^"]+)"\??|(\[key: string\])): (.*)$/.exec(line))) {
            const opens = /\{$/.test(m[3]);
            const sub = opens ? { fields: {} } : m[3] === "IObjectMeta;" ? { named: "IIoK8sApimachineryPkgApisMetaV1ObjectMeta" } : null;
            if (m[1] !== undefined) top.fields[m[1]] = sub; else top.any = sub;
            if (opens) stack.push(sub);
        } else if (/^\s*\}/.test(line)) {
            stack.pop();
            if (!stack.length) return root;
        }
    }
    return null;
}

function checkInline(value, node, tables, where, errors) {
    if (!node || value === null || typeof value !== "object") return;
    if (Array.isArray(value)) { value.forEach((x, i) => checkInline(x, node, tables, `${where}[${i}]`, errors)); return; }
    if (node.named) { checkFields(value, node.named, tables, where, errors); return; }
    for (const [key, v] of Object.entries(value)) {
        if (key in node.fields) checkInline(v, node.fields[key], tables, `${where}.${key}`, errors);
        else if (node.any !== undefined) checkInline(v, node.any, tables, `${where}.${key}`, errors);
        else errors.push(`${where}.${key}: unknown field`);
    }
}

async function validate(files) {
    const tables = fieldTables();
    let bad = 0, n = 0;
    for (const f of files) {
        for (const o of readDocs(f)) {
            n++;
            const id = `${f}: ${o.kind}/${o.metadata?.name}`;
            const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
            const crd = CRD_PACKAGES[group] || CRD_SCHEMA_ONLY[group];
            const pkgName = crd || "kubernetes-models";
            const sub = crd ? `${group}/${version}` : `${group ? group + "/" : ""}${version}`;
            let Cls;
            try {
                Cls = (await import(`${pkgName}/${sub}/${o.kind}`))[o.kind];
            } catch { console.error(`${id}: unknown apiVersion/kind ${o.apiVersion} ${o.kind}`); bad++; continue; }
            try { new Cls(o).validate(); } catch (e) { console.error(`${id}: ${e.message}`); bad++; continue; }
            if (CRD_SCHEMA_ONLY[group]) continue;
            const pkg = path.dirname(require.resolve(`${pkgName}/package.json`));
            const src = fs.readFileSync(path.join(pkg, sub, `${o.kind}.d.ts`), "utf8");
            const errors = [];
            if (CRD_PACKAGES[group]) {
                const tree = inlineTable(src, `I${o.kind}`);
                if (tree) checkInline(o, tree, tables, o.kind, errors); else errors.push(`no field table for ${o.kind}`);
            } else {
                const alias = /export \{ (\w+) as (\w+)/.exec(src);
                checkFields(o, alias ? alias[2] : "", tables, o.kind, errors);
                if (!alias || !tables.has(alias[2])) errors.push(`no field table for ${o.kind}`);
            }
            for (const e of errors) console.error(`${id}: ${e}`);
            if (errors.length) bad++;
        }
    }
    console.log(`validated ${n} objects, ${bad} with problems`);
    if (n === 0 || bad) process.exit(1);
}

// Objects by kind/name, keys sorted, so two builds compare regardless of order.
function same(a, b) {
    const sortd = (v) => Array.isArray(v) ? v.map(sortd) : v && typeof v === "object"
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortd(v[k])])) : v;
    const load = (f) => new Map(readDocs(f).map((o) => [`${o.kind}/${o.metadata.name}`, JSON.stringify(sortd(o))]));
    const A = load(a), B = load(b);
    let bad = 0;
    for (const k of new Set([...A.keys(), ...B.keys()]))
        if (A.get(k) !== B.get(k)) { console.error(`differs: ${k}`); bad++; }
    if (bad) process.exit(1);
}

// PromQL, the simple way: drop strings, label matchers, ranges and label lists
// (by/without/on/ignoring/group_*), then every identifier not followed by "("
// and not a keyword is a metric name.
const PROMQL_WORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on",
    "ignoring", "group_left", "group_right", "inf", "nan", "le"]);
function exprNames(expr) {
    let e = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, "")
        .replace(/\[[^\]]*\]/g, "")
        .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
    const names = new Set();
    for (const m of e.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
        if (m[2] || PROMQL_WORDS.has(m[1]) || /^\d/.test(m[1])) continue;
        if (m[1].startsWith("$") || m[1] === "__rate_interval") continue;
        names.add(m[1]);
    }
    return names;
}
function names(files) {
    const all = new Set();
    const exprs = [];
    for (const f of files) {
        const doc = f.endsWith(".json") ? JSON.parse(fs.readFileSync(f, "utf8")) : YAML.parse(fs.readFileSync(f, "utf8"));
        const walk = (v, key) => {
            if (typeof v === "string" && (key === "expr" || key === "query" || key === "definition")) exprs.push(v);
            else if (v && typeof v === "object" && v.type !== "datasource") for (const [k, x] of Object.entries(v)) walk(x, k);
        };
        walk(doc, "");
    }
    for (const e of exprs) {
        const m = /^label_values\((\w+)/.exec(e);
        for (const n of m ? [m[1]] : exprNames(e)) all.add(n);
    }
    if (!all.size) fail("no metric names found");
    console.log([...all].sort().join("\n"));
}

// The rule file as a PrometheusRule: its groups verbatim, so the alerts
// have one source (k8s/monitoring/vizmesh-rules.yml, which promtool tests).
function prometheusRule(file) {
    const rules = YAML.parse(fs.readFileSync(file, "utf8"));
    if (!Array.isArray(rules?.groups) || !rules.groups.length) fail(`${file}: no groups`);
    const obj = { apiVersion: "monitoring.coreos.com/v1", kind: "PrometheusRule",
        metadata: { name: path.basename(file).replace(/\.ya?ml$/, ""),
            labels: { "app.kubernetes.io/part-of": "vizmesh" } },
        spec: { groups: rules.groups } };
    return `#   ${path.basename(file).replace(/\.ya?ml$/, "")}.yaml - the alert rules of ../${path.basename(file)} as a PrometheusRule (prometheus-operator)
#   SPDX-License-Identifier: MPL-2.0
#   GENERATED, do not edit: edit ../${path.basename(file)}, then
#   node tests/k8s/k8s_tool.mjs prometheusrule k8s/monitoring/${path.basename(file)} >k8s/monitoring/operator/${path.basename(file).replace(/\.ya?ml$/, "")}.yaml
#   (tests/k8s/test_k8s_rules.sh fails while the two differ).
${YAML.stringify(obj, { lineWidth: 0 })}`;
}

// The pods prometheus.yml keeps (annotation prometheus.io/scrape "true",
// label part-of vizmesh, port prometheus.io/port) against the ServiceMonitors
// of mon: one must select, in the pods' namespace, a Service whose selector
// matches the pod labels and whose endpoint port leads to that container
// port, and label the target job="vizmesh" with the pod's component.
function scrapes(appFile, monFile) {
    const app = readDocs(appFile), monitors = readDocs(monFile).filter((o) => o.kind === "ServiceMonitor");
    const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels?.[k] === v);
    let bad = 0, n = 0;
    for (const w of app) {
        const t = w.spec?.template;
        const ann = t?.metadata?.annotations || {}, labels = t?.metadata?.labels || {};
        if (ann["prometheus.io/scrape"] !== "true" || labels["app.kubernetes.io/part-of"] !== "vizmesh") continue;
        n++;
        const ns = w.metadata.namespace || "";
        const want = Number(ann["prometheus.io/port"]);
        const ports = t.spec.containers.flatMap((c) => c.ports || []);
        const found = monitors.some((m) => {
            const names = m.spec.namespaceSelector?.matchNames;
            if (!m.spec.namespaceSelector?.any && !(names || [m.metadata.namespace]).includes(ns)) return false;
            const relabels = m.spec.endpoints.flatMap((e) => e.relabelings || []);
            if (!relabels.some((r) => r.targetLabel === "job" && r.replacement === "vizmesh" && !r.sourceLabels)) return false;
            if (!relabels.some((r) => r.targetLabel === "component" &&
                (r.sourceLabels || []).join() === "__meta_kubernetes_pod_label_app_kubernetes_io_component")) return false;
            return app.some((svc) => svc.kind === "Service" && (svc.metadata.namespace || "") === ns &&
                matches(m.spec.selector.matchLabels, svc.metadata.labels) && matches(svc.spec.selector, labels) &&
                Object.keys(svc.spec.selector || {}).length &&
                m.spec.endpoints.some((e) => (svc.spec.ports || []).some((p) => {
                    if (p.name !== e.port) return false;
                    const tp = p.targetPort ?? p.port;
                    return typeof tp === "number" ? tp === want : ports.some((cp) => cp.name === tp && cp.containerPort === want);
                })));
        });
        if (!found) { console.error(`${w.kind}/${w.metadata.name} (${ns}): no ServiceMonitor scrapes its port ${want}`); bad++; }
    }
    console.log(`${n} scraped workloads, ${n - bad} covered by a ServiceMonitor`);
    if (!n || bad) process.exit(1);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "build" && args.length === 1)
    process.stdout.write(build(args[0]).map((o) => YAML.stringify(o)).join("---\n"));
else if (cmd === "validate" && args.length) await validate(args);
else if (cmd === "same" && args.length === 2) same(args[0], args[1]);
else if (cmd === "names" && args.length) names(args);
else if (cmd === "hash" && args.length === 1)
    for (const o of readDocs(args[0])) console.log(`${o.kind}/${o.metadata?.name ?? ""} ${kustomizeHash(o)}`);
else if (cmd === "prometheusrule" && args.length === 1) process.stdout.write(prometheusRule(args[0]));
else if (cmd === "scrapes" && args.length === 2) scrapes(args[0], args[1]);
else if (cmd === "refs" && args.length === 1)
    for (const o of readDocs(args[0]))
        forEachReference(o, (kind, holder, key) =>
            console.log(`${o.kind}/${o.metadata.name} ${kind} ${holder[key]}${holder.optional ? " optional" : ""}`));
else fail("usage: build DIR | validate FILE... | same A B | names FILE... | hash FILE | refs FILE | prometheusrule RULES | scrapes APP MON");
