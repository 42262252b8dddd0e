// k8s_tool.mjs - build a kustomization the simple way and validate every object it yields
// SPDX-License-Identifier: MPL-2.0
//
//   node k8s_tool.mjs build DIR          print the objects of DIR/kustomization.yaml (YAML stream)
//   node k8s_tool.mjs validate FILE...   validate every document; exit 1 on any problem
//   node k8s_tool.mjs same A B           exit 1 unless two YAML streams hold the same objects
//   node k8s_tool.mjs names FILE...      metric names used in PromQL of rule files / dashboards
//
// build implements the kustomize features k8s/ uses, nothing more: resources
// (files and directories), namespace, images, replicas, JSON 6902 patches with
// a kind/name(regex) target, configMapGenerator (files, no hash suffix). It
// refuses any other key, so the test fails instead of silently diverging.
// When kubectl kustomize (kustomize >= 4) exists, the test compares both.
//
// validate runs kubernetes-models' schema check, then rejects field names the
// schema does not know (the package itself lets misspellings through): the
// field tables are read from the package's .d.ts declarations.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const KNOWN = new Set(["apiVersion", "kind", "resources", "namespace", "images", "replicas",
    "patches", "configMapGenerator", "generatorOptions"]);
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

function build(dir) {
    const kfile = path.join(dir, "kustomization.yaml");
    const k = YAML.parse(fs.readFileSync(kfile, "utf8"));
    for (const key of Object.keys(k)) if (!KNOWN.has(key)) fail(`${kfile}: unsupported key ${key}`);
    let objs = [];
    for (const r of k.resources || []) {
        const p = path.join(dir, r);
        objs.push(...(fs.statSync(p).isDirectory() ? build(p) : readDocs(p)));
    }
    const gen = k.generatorOptions || {};
    if (gen.disableNameSuffixHash !== true && k.configMapGenerator) fail(`${kfile}: name hashes unsupported`);
    for (const g of k.configMapGenerator || []) {
        const data = {};
        for (const f of g.files || []) data[path.basename(f)] = fs.readFileSync(path.join(dir, f), "utf8");
        const labels = { ...(gen.labels || {}), ...(g.options?.labels || {}) };
        objs.push({ apiVersion: "v1", kind: "ConfigMap",
            metadata: { name: g.name, ...(Object.keys(labels).length ? { labels } : {}) }, data });
    }
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
    return objs;
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

async function validate(files) {
    const tables = fieldTables();
    let bad = 0, n = 0;
    for (const f of files) {
        for (const o of readDocs(f)) {
            n++;
            const id = `${f}: ${o.kind}/${o.metadata?.name}`;
            const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
            let Cls;
            try {
                Cls = (await import(`kubernetes-models/${group ? group + "/" : ""}${version}/${o.kind}`))[o.kind];
            } catch { console.error(`${id}: unknown apiVersion/kind ${o.apiVersion} ${o.kind}`); bad++; continue; }
            try { new Cls(o).validate(); } catch (e) { console.error(`${id}: ${e.message}`); bad++; continue; }
            const pkg = path.dirname(require.resolve("kubernetes-models/package.json"));
            const src = fs.readFileSync(path.join(pkg, group || "", version, `${o.kind}.d.ts`), "utf8");
            const alias = /export \{ (\w+) as (\w+)/.exec(src);
            const errors = [];
            checkFields(o, alias ? alias[2] : "", tables, o.kind, errors);
            if (!alias || !tables.has(alias[2])) errors.push(`no field table for ${o.kind}`);
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

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "build" && args.length === 1)
    process.stdout.write(build(args[0]).map((o) => YAML.stringify(o)).join("---\n"));
else if (cmd === "validate" && args.length) await validate(args);
else if (cmd === "same" && args.length === 2) same(args[0], args[1]);
else if (cmd === "names" && args.length) names(args);
else fail("usage: build DIR | validate FILE... | same A B | names FILE...");
