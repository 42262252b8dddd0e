// k8s_docker.mjs - run rendered Kubernetes objects under docker, as a kubelet would, without a cluster
// SPDX-License-Identifier: MPL-2.0
//
//   node k8s_docker.mjs kubectl ARGS...     a stand-in for the kubectl commands the docs give an
//                                           operator (apply -f, create secret generic); the objects
//                                           go to the directory $VZ_FAKE_KUBE_STORE
//   node k8s_docker.mjs plan RENDERED STORE WORK RUN
//                                           translate, print the docker commands (no docker needed)
//   node k8s_docker.mjs up RENDERED STORE WORK RUN ENTRY
//                                           translate, start every container, wait for readiness,
//                                           print the URL of Service ENTRY ("name:port") as JSON
//   node k8s_docker.mjs down RUN            remove the run's containers and network
//   node k8s_docker.mjs images FILE         the images FILE's workloads run
//   node k8s_docker.mjs setenv FILE KIND/NAME VAR VALUE
//                                           set env VAR of a workload in a rendered FILE (self-check)
//
// The translation is generic: every Deployment, StatefulSet, DaemonSet, Job and
// Pod of RENDERED (the YAML stream an overlay builds to) becomes `docker run`s
// with exactly its image, command/args, env (envFrom, configMapKeyRef,
// secretKeyRef, fieldRef, $(VAR) expansion), ConfigMap/Secret/projected/
// downwardAPI volumes (files with their modes, items and subPath, read-only),
// emptyDir (tmpfs), PVCs (a fresh directory owned by fsGroup), security context
// (user, fsGroup, read-only root, capabilities, no-new-privileges), limits and
// replicas (raised to an HPA's minReplicas or a ScaledObject's minReplicaCount). All containers share one docker
// network; a pod matched by a Service's selector answers to <svc>, <svc>.<ns>,
// <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local, StatefulSet pods to
// <pod>.<serviceName>... too; a name shared by several pods (the broker's
// replicas) resolves to each of their addresses, as a headless Service's
// does (a ClusterIP Service's one virtual IP is not emulated). Readiness is
// the readinessProbe, run from the host (httpGet, tcpSocket) or in the
// container (exec), like the kubelet.
// Anything the translation cannot honour faithfully (hostPath, a grpc probe,
// status.podIP ...) is refused, so a manifest never silently diverges. What a
// docker network cannot do: Service ports that differ from the target port
// (only the entry Service's is resolved, for the caller), NetworkPolicies, and
// the Kubernetes service-link variables (<SVC>_SERVICE_HOST ...), which no
// vizmesh daemon reads.
import fs from "node:fs";
import path from "node:path";
import net from "node:net";
import { execFile, spawnSync } from "node:child_process";
import YAML from "yaml";

const DOCKER = process.env.DOCKER || "/usr/bin/docker";
const RUN_LABEL = "vz.k8s-docker.run";
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"]);

class Refusal extends Error {}
function refuse(msg) { throw new Refusal(msg); }
function die(msg) { console.error(`k8s_docker: ${msg}`); process.exit(1); }

function readDocs(file) {
    const text = file === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(file, "utf8");
    return YAML.parseAllDocuments(text).map((d) => {
        if (d.errors.length) die(`${file}: ${d.errors[0].message}`);
        return d.toJS();
    }).filter((o) => o).flatMap((o) => (o.kind === "List" ? o.items || [] : [o]));
}

// ------------------------------------------------------------ fake kubectl
// Only what the operator docs use; anything else fails loudly so the test is
// extended rather than skipping a step.
function storeFile(store, o) {
    const ns = o.kind === "Namespace" ? "_cluster" : o.metadata.namespace || "default";
    return path.join(store, `${ns}.${o.kind}.${o.metadata.name}.json`);
}

function kubectl(argv) {
    const store = process.env.VZ_FAKE_KUBE_STORE || die("VZ_FAKE_KUBE_STORE not set");
    let ns = null, dryRun = false, output = null;
    const rest = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = (flag) => (a.startsWith(flag + "=") ? a.slice(flag.length + 1) : argv[++i]);
        if (a === "-n" || a.startsWith("--namespace")) ns = a === "-n" ? argv[++i] : val("--namespace");
        else if (a.startsWith("--dry-run")) dryRun = true;
        else if (a === "-o" || a.startsWith("--output")) output = a === "-o" ? argv[++i] : val("--output");
        else rest.push(a);
    }
    const save = (o, create) => {
        if (o.kind !== "Namespace") o.metadata.namespace = o.metadata.namespace || ns || "default";
        const f = storeFile(store, o);
        if (create && fs.existsSync(f)) die(`kubectl: ${o.kind.toLowerCase()}s "${o.metadata.name}" already exists`);
        if (dryRun) { process.stdout.write(output === "yaml" ? YAML.stringify(o) : JSON.stringify(o) + "\n"); return; }
        fs.writeFileSync(f, JSON.stringify(o));
        console.log(`${o.kind.toLowerCase()}/${o.metadata.name} ${create ? "created" : "configured"}`);
    };
    if (rest[0] === "apply") {
        const fi = rest.findIndex((a) => a === "-f" || a.startsWith("--filename"));
        if (fi < 0) die(`kubectl apply: only -f is supported (${argv.join(" ")})`);
        const src = rest[fi].includes("=") ? rest[fi].split("=")[1] : rest[fi + 1];
        const files = src !== "-" && fs.statSync(src).isDirectory()
            ? fs.readdirSync(src).filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => path.join(src, f)) : [src];
        const objs = files.flatMap(readDocs);
        if (!objs.length) die(`kubectl apply: no objects in ${src}`);
        for (const o of objs) save(o, false);
        return;
    }
    if (rest[0] === "create" && rest[1] === "secret" && rest[2] === "generic") {
        const name = rest[3];
        if (!name || name.startsWith("-")) die("kubectl create secret generic: no name");
        const data = {};
        const put = (k, buf) => {
            if (k in data) die(`kubectl create secret: key ${k} given twice`);
            data[k] = buf.toString("base64");
        };
        for (const a of rest.slice(4)) {
            let m;
            if ((m = /^--from-literal=([^=]+)=(.*)$/s.exec(a))) put(m[1], Buffer.from(m[2]));
            else if ((m = /^--from-file=(?:([^=]+)=)?(.+)$/s.exec(a))) {
                if (fs.statSync(m[2]).isDirectory()) {
                    for (const f of fs.readdirSync(m[2]).sort())
                        if (fs.statSync(path.join(m[2], f)).isFile()) put(f, fs.readFileSync(path.join(m[2], f)));
                } else put(m[1] || path.basename(m[2]), fs.readFileSync(m[2]));
            } else if (a.startsWith("--type=")) { /* Opaque only */ if (a !== "--type=Opaque") die(`unsupported ${a}`); }
            else die(`kubectl create secret generic: unsupported argument ${a}`);
        }
        save({ apiVersion: "v1", kind: "Secret", metadata: { name }, type: "Opaque", data }, true);
        return;
    }
    if (rest[0] === "create" && rest[1] === "namespace") {
        save({ apiVersion: "v1", kind: "Namespace", metadata: { name: rest[2] } }, true);
        return;
    }
    die(`unsupported kubectl command (extend tests/k8s/k8s_docker.mjs): kubectl ${argv.join(" ")}`);
}

// ------------------------------------------------------------ translation
// Kubernetes' $(VAR) expansion: $$ is a literal $, $(NAME) the value when
// NAME is defined, else left as written (k8s.io/.../third_party/forked/golang/expansion).
export function expand(s, vars) {
    let out = "";
    for (let i = 0; i < s.length; i++) {
        if (s[i] !== "$" || i + 1 >= s.length) { out += s[i]; continue; }
        const c = s[i + 1];
        if (c === "$") { out += "$"; i++; continue; }
        if (c === "(") {
            const end = s.indexOf(")", i + 2);
            if (end < 0) { out += s.slice(i); break; }
            const name = s.slice(i + 2, end);
            out += name in vars ? vars[name] : s.slice(i, end + 1);
            i = end;
            continue;
        }
        out += "$" + c;
        i++;
    }
    return out;
}

function quantity(q, unit) {
    const m = /^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
    if (!m) refuse(`quantity ${q} not understood`);
    const mult = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
    const v = Number(m[1]) * (m[2] ? mult[m[2]] : 1);
    return unit ? Math.ceil(v / quantity(unit)) : v;
}

// root:GROUP as the kubelet makes it; only root may, so a plan by anyone else skips it.
function chown(p, group) {
    try { fs.chownSync(p, 0, group); } catch (e) { if (e.code !== "EPERM" || process.getuid() === 0) throw e; }
}

class Cluster {
    constructor(objs, stored) {
        this.objs = [...objs, ...stored];
        this.byKey = new Map();
        for (const o of this.objs) {
            if (o.kind === "Namespace") continue;
            o.metadata.namespace = o.metadata.namespace || "default";
            this.byKey.set(`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`, o);
        }
    }
    get(kind, ns, name) { return this.byKey.get(`${kind}/${ns}/${name}`); }
    // The data of a ConfigMap or Secret as Buffers by key; null when absent.
    data(kind, ns, name) {
        const o = this.get(kind, ns, name);
        if (!o) return null;
        const out = {};
        if (kind === "Secret") {
            for (const [k, v] of Object.entries(o.data || {})) out[k] = Buffer.from(v, "base64");
            for (const [k, v] of Object.entries(o.stringData || {})) out[k] = Buffer.from(v);
        } else {
            for (const [k, v] of Object.entries(o.data || {})) out[k] = Buffer.from(v);
            for (const [k, v] of Object.entries(o.binaryData || {})) out[k] = Buffer.from(v, "base64");
        }
        return out;
    }
    of(kind) { return this.objs.filter((o) => o.kind === kind); }
}

function selects(selector, labels) {
    return selector && Object.keys(selector).length &&
        Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

// Every pod the workloads would make: {ns, name, workload, spec, labels, index, sts}.
function pods(cluster) {
    const out = [];
    const hpaMin = new Map();
    for (const h of cluster.of("HorizontalPodAutoscaler")) {
        const t = h.spec.scaleTargetRef;
        hpaMin.set(`${t.kind}/${h.metadata.namespace}/${t.name}`, h.spec.minReplicas ?? 1);
    }
    //  KEDA's ScaledObjects (the prod overlay) make an HPA of their own.
    for (const so of cluster.of("ScaledObject")) {
        const t = so.spec.scaleTargetRef;
        hpaMin.set(`${t.kind || "Deployment"}/${so.metadata.namespace}/${t.name}`, so.spec.minReplicaCount ?? 0);
    }
    for (const w of cluster.objs.filter((o) => WORKLOADS.has(o.kind))) {
        const ns = w.metadata.namespace;
        const tpl = w.kind === "Pod" ? { metadata: w.metadata, spec: w.spec } : w.spec.template;
        if (w.kind !== "Pod" && w.spec.selector?.matchLabels &&
            !selects(w.spec.selector.matchLabels, tpl.metadata?.labels))
            refuse(`${w.kind} ${w.metadata.name}: its selector does not match its pod template`);
        let n = 1;
        if (w.kind === "Deployment" || w.kind === "StatefulSet") {
            n = w.spec.replicas ?? 1;
            n = Math.max(n, hpaMin.get(`${w.kind}/${ns}/${w.metadata.name}`) ?? 0);
        } else if (w.kind === "Job") n = w.spec.parallelism ?? 1;
        for (let i = 0; i < n; i++) {
            out.push({
                ns, workload: w, spec: tpl.spec, labels: tpl.metadata?.labels || {},
                annotations: tpl.metadata?.annotations || {}, index: i,
                name: w.kind === "Pod" ? w.metadata.name : `${w.metadata.name}-${i}`,
            });
        }
    }
    return out;
}

function fieldRef(ref, pod, where) {
    const p = ref.fieldPath;
    let m;
    if (p === "metadata.name") return pod.name;
    if (p === "metadata.namespace") return pod.ns;
    if (p === "spec.serviceAccountName") return pod.spec.serviceAccountName || "default";
    if (p === "spec.nodeName") return "docker";
    if ((m = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(p))) return pod[m[1]][m[2]] ?? "";
    refuse(`${where}: fieldRef ${p} cannot be known before the container runs`);
}

function resourceRef(ref, c, where) {
    const [kind, res] = ref.resource.split(".");
    const q = c.resources?.[kind]?.[res];
    if (q === undefined) refuse(`${where}: resourceFieldRef ${ref.resource} has no value (node allocatable is unknown)`);
    return String(quantity(q, ref.divisor || "1"));
}

// The environment of one container, in Kubernetes' order: envFrom, then env.
function environment(cluster, pod, c, where) {
    const vars = {};
    for (const src of c.envFrom || []) {
        const ref = src.configMapRef || src.secretRef;
        const kind = src.configMapRef ? "ConfigMap" : "Secret";
        const data = cluster.data(kind, pod.ns, ref.name);
        if (!data) {
            if (ref.optional) continue;
            refuse(`${where}: envFrom ${kind} ${pod.ns}/${ref.name} does not exist`);
        }
        for (const [k, v] of Object.entries(data)) vars[(src.prefix || "") + k] = v.toString();
    }
    for (const e of c.env || []) {
        if (!e.valueFrom) { vars[e.name] = expand(e.value ?? "", vars); continue; }
        const vf = e.valueFrom;
        const kref = vf.configMapKeyRef || vf.secretKeyRef;
        if (kref) {
            const kind = vf.configMapKeyRef ? "ConfigMap" : "Secret";
            const data = cluster.data(kind, pod.ns, kref.name);
            if (!data || !(kref.key in data)) {
                if (kref.optional) continue;
                const why = data ? `has no key ${kref.key}` : "does not exist";
                refuse(`${where}: env ${e.name}: ${kind} ${pod.ns}/${kref.name} ${why}`);
            }
            vars[e.name] = data[kref.key].toString();
        } else if (vf.fieldRef) vars[e.name] = fieldRef(vf.fieldRef, pod, `${where}: env ${e.name}`);
        else if (vf.resourceFieldRef) vars[e.name] = resourceRef(vf.resourceFieldRef, c, `${where}: env ${e.name}`);
        else refuse(`${where}: env ${e.name}: unsupported valueFrom`);
    }
    return vars;
}

// Files of a ConfigMap/Secret/projected/downwardAPI volume: [{path, data, mode}], or null when
// an optional source is absent.
function volumeFiles(cluster, pod, v, where) {
    const files = [];
    const fromSource = (kind, src, defMode) => {
        const name = src.name || src.secretName;
        const data = cluster.data(kind, pod.ns, name);
        if (!data) {
            if (src.optional) return;
            refuse(`${where}: volume ${v.name}: ${kind} ${pod.ns}/${name} does not exist`);
        }
        if (src.items) {
            for (const it of src.items) {
                if (!(it.key in data)) {
                    if (src.optional) continue;
                    refuse(`${where}: volume ${v.name}: ${kind} ${pod.ns}/${name} has no key ${it.key}`);
                }
                files.push({ path: it.path, data: data[it.key], mode: it.mode ?? defMode });
            }
        } else for (const [k, d] of Object.entries(data)) files.push({ path: k, data: d, mode: defMode });
    };
    if (v.secret) fromSource("Secret", v.secret, v.secret.defaultMode ?? 0o644);
    else if (v.configMap) fromSource("ConfigMap", v.configMap, v.configMap.defaultMode ?? 0o644);
    else if (v.downwardAPI || v.projected) {
        const def = (v.downwardAPI || v.projected).defaultMode ?? 0o644;
        const sources = v.downwardAPI ? [{ downwardAPI: v.downwardAPI }] : v.projected.sources;
        for (const s of sources) {
            if (s.secret) fromSource("Secret", s.secret, def);
            else if (s.configMap) fromSource("ConfigMap", s.configMap, def);
            else if (s.downwardAPI) {
                for (const it of s.downwardAPI.items) {
                    if (!it.fieldRef) refuse(`${where}: volume ${v.name}: downwardAPI resourceFieldRef unsupported`);
                    const data = Buffer.from(fieldRef(it.fieldRef, pod, where));
                    files.push({ path: it.path, data, mode: it.mode ?? def });
                }
            } else refuse(`${where}: volume ${v.name}: projected source ${Object.keys(s)[0]} unsupported`);
        }
    }
    return files;
}

// One pod as a list of docker-run argument vectors (init containers first)
// plus what the readiness wait needs.
function translatePod(cluster, pod, ctx) {
    const spec = pod.spec;
    const kind = pod.workload.kind;
    const where = `${kind} ${pod.ns}/${pod.workload.metadata.name}`;
    const psc = spec.securityContext || {};
    for (const k of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[k]) refuse(`${where}: ${k} unsupported`);
    const containers = spec.containers || [];
    const inits = spec.initContainers || [];
    const podDir = path.join(ctx.work, "pods", pod.ns, pod.name);
    // Aliases: every Service whose selector takes this pod; a StatefulSet's
    // pods also by <pod>.<serviceName>.
    const aliases = [];
    const dns = (n) => [n, `${n}.${pod.ns}`, `${n}.${pod.ns}.svc`, `${n}.${pod.ns}.svc.cluster.local`];
    for (const s of cluster.of("Service"))
        if (s.metadata.namespace === pod.ns && selects(s.spec.selector, pod.labels)) aliases.push(...dns(s.metadata.name));
    if (kind === "StatefulSet" && pod.workload.spec.serviceName)
        aliases.push(...dns(`${pod.name}.${pod.workload.spec.serviceName}`));
    const base = `vzk-${ctx.run}-${pod.ns}-${pod.name}`;
    const shared = containers.length + inits.length > 1;
    const runs = [];
    const netArgs = ["--network", ctx.network, "--hostname", pod.name, ...aliases.flatMap((a) => ["--network-alias", a])];
    if (shared) {
        // A pod of several containers: one sandbox holds the network, as the pause container does.
        runs.push({
            name: `${base}-sandbox`, role: "sandbox",
            args: ["-d", "--name", `${base}-sandbox`, ...netArgs, "--label", `${RUN_LABEL}=${ctx.run}`,
                "--entrypoint", "sleep", containers[0].image, "infinity"],
        });
    }
    // Volumes: files written once per pod, bind-mounted read-only.
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    const claims = new Map((pod.workload.spec?.volumeClaimTemplates || []).map((t) => [t.metadata.name, t]));
    const fsGroup = psc.fsGroup;
    const volDir = (name) => path.join(podDir, "volumes", name);
    const prepared = new Map();
    const prepare = (name) => {
        if (prepared.has(name)) return prepared.get(name);
        const v = volumes.get(name);
        let r;
        if (!v && claims.has(name)) r = { dir: volDir(name), pvc: true };
        else if (!v) refuse(`${where}: volumeMount of undeclared volume ${name}`);
        else if (v.emptyDir) r = v.emptyDir.medium === "Memory" && !shared
            ? { tmpfs: v.emptyDir.sizeLimit ? quantity(v.emptyDir.sizeLimit) : null } : { dir: volDir(name), empty: true };
        else if (v.persistentVolumeClaim)
            r = { dir: path.join(ctx.work, "claims", pod.ns, v.persistentVolumeClaim.claimName), pvc: true };
        else if (v.secret || v.configMap || v.projected || v.downwardAPI) {
            const files = volumeFiles(cluster, pod, v, where);
            const dir = volDir(name);
            fs.mkdirSync(dir, { recursive: true });
            for (const f of files) {
                const p = path.join(dir, f.path);
                if (!p.startsWith(dir + "/")) refuse(`${where}: volume ${name}: item path ${f.path} leaves the volume`);
                fs.mkdirSync(path.dirname(p), { recursive: true });
                fs.writeFileSync(p, f.data);
                // The kubelet: owner root, group fsGroup with read added to the item's mode.
                let mode = f.mode;
                if (fsGroup !== undefined) { chown(p, fsGroup); mode |= 0o440; }
                fs.chmodSync(p, mode);
            }
            r = { dir, ro: true, files: files.map((f) => f.path) };
        } else refuse(`${where}: volume ${name}: type ${Object.keys(v).filter((k) => k !== "name")[0]} unsupported`);
        if (r.dir && (r.pvc || r.empty)) {
            fs.mkdirSync(r.dir, { recursive: true });
            // emptyDir is world-writable; a claim with fsGroup is group-owned and setgid.
            if (r.empty) fs.chmodSync(r.dir, 0o777);
            else if (fsGroup !== undefined) { chown(r.dir, fsGroup); fs.chmodSync(r.dir, 0o2775); }
        }
        prepared.set(name, r);
        return r;
    };
    for (const [init, c] of [...inits.map((x) => [true, x]), ...containers.map((x) => [false, x])]) {
        const cw = `${where} container ${c.name}`;
        const sc = { ...psc, ...(c.securityContext || {}) };
        const env = environment(cluster, pod, c, cw);
        // --no-healthcheck: the kubelet ignores an image's HEALTHCHECK; the probes decide.
        const args = ["-d", "--no-healthcheck", "--name", shared ? `${base}-${c.name}` : base,
            "--label", `${RUN_LABEL}=${ctx.run}`,
            "--label", `vz.k8s-docker.pod=${pod.ns}/${pod.name}`, "--label", `vz.k8s-docker.container=${c.name}`];
        for (const [k, v] of Object.entries(pod.labels)) args.push("--label", `${k}=${v}`);
        args.push(...(shared ? ["--network", `container:${base}-sandbox`] : netArgs));
        const group = sc.runAsGroup !== undefined ? `:${sc.runAsGroup}` : "";
        if (sc.runAsUser !== undefined) args.push("--user", `${sc.runAsUser}${group}`);
        else if (sc.runAsGroup !== undefined) refuse(`${cw}: runAsGroup without runAsUser unsupported`);
        for (const g of [...(fsGroup !== undefined ? [fsGroup] : []), ...(psc.supplementalGroups || [])])
            args.push("--group-add", String(g));
        if (sc.readOnlyRootFilesystem) args.push("--read-only");
        if (sc.privileged) args.push("--privileged");
        if (sc.allowPrivilegeEscalation === false) args.push("--security-opt", "no-new-privileges");
        for (const cap of sc.capabilities?.drop || []) args.push("--cap-drop", cap);
        for (const cap of sc.capabilities?.add || []) args.push("--cap-add", cap);
        const sp = sc.seccompProfile?.type;
        if (sp === "Unconfined") args.push("--security-opt", "seccomp=unconfined");
        else if (sp && sp !== "RuntimeDefault") refuse(`${cw}: seccompProfile ${sp} unsupported`);
        if (sc.runAsNonRoot) ctx.nonRoot.push({ where: cw, image: c.image, uid: sc.runAsUser });
        const lim = c.resources?.limits || {};
        if (lim.memory) args.push("--memory", String(quantity(lim.memory)));
        if (lim.cpu) args.push("--cpus", String(quantity(lim.cpu)));
        if (spec.terminationGracePeriodSeconds !== undefined)
            args.push("--stop-timeout", String(spec.terminationGracePeriodSeconds));
        const policy = kind === "Job" || kind === "Pod"
            ? spec.restartPolicy || (kind === "Job" ? "Never" : "Always") : "Always";
        if (!init) args.push("--restart", { Always: "always", OnFailure: "on-failure", Never: "no" }[policy]);
        if (c.workingDir) args.push("-w", c.workingDir);
        for (const [k, v] of Object.entries(env)) args.push("-e", `${k}=${v}`);
        for (const m of c.volumeMounts || []) {
            const r = prepare(m.name);
            const sub = m.subPathExpr ? expand(m.subPathExpr, env) : m.subPath;
            if (r.tmpfs !== undefined) {
                if (sub) refuse(`${cw}: subPath on a memory emptyDir unsupported`);
                const size = r.tmpfs ? `,tmpfs-size=${r.tmpfs}` : "";
                args.push("--mount", `type=tmpfs,destination=${m.mountPath},tmpfs-mode=1777${size}`);
                continue;
            }
            let src = r.dir;
            if (sub) {
                src = path.join(r.dir, sub);
                if (!src.startsWith(r.dir + "/")) refuse(`${cw}: subPath ${sub} leaves volume ${m.name}`);
                if (!fs.existsSync(src)) {
                    if (r.ro)
                        refuse(`${cw}: subPath ${sub} is not in volume ${m.name} (it has ${r.files.join(", ") || "nothing"})`);
                    fs.mkdirSync(src, { recursive: true });
                }
            }
            const ro = r.ro || m.readOnly;
            args.push("--mount", `type=bind,source=${src},destination=${m.mountPath}${ro ? ",readonly" : ""}`);
        }
        const cmd = (c.command || []).map((s) => expand(s, env));
        const cargs = (c.args || []).map((s) => expand(s, env));
        if (cmd.length) args.push("--entrypoint", cmd[0]);
        args.push(c.image, ...cmd.slice(1), ...cargs);
        ctx.images.add(c.image);
        // Probes: a named port must be one of the container's (else the kubelet's probe fails forever).
        for (const k of ["startupProbe", "livenessProbe", "readinessProbe"]) {
            if (c[k]?.grpc) refuse(`${cw}: grpc ${k} unsupported`);
            const pp = (c[k]?.httpGet || c[k]?.tcpSocket)?.port;
            if (typeof pp === "string" && !(c.ports || []).some((x) => x.name === pp))
                refuse(`${cw}: ${k} names port ${pp}, which the container does not declare`);
        }
        if (c.lifecycle?.postStart) refuse(`${cw}: postStart hooks unsupported`);
        const run = { name: shared ? `${base}-${c.name}` : base, role: init ? "init" : kind === "Job" ? "job" : "main",
            pod: `${pod.ns}/${pod.name}`, container: c.name, ports: c.ports || [], probe: c.readinessProbe || null,
            liveness: c.livenessProbe || null, args };
        runs.push(run);
    }
    return runs;
}

function translate(rendered, storeDir, work, run) {
    const stored = fs.existsSync(storeDir)
        ? fs.readdirSync(storeDir).map((f) => JSON.parse(fs.readFileSync(path.join(storeDir, f), "utf8"))) : [];
    const cluster = new Cluster(readDocs(rendered), stored);
    const ctx = { work, run, network: `vzk-${run}`, images: new Set(), nonRoot: [] };
    const namespaces = new Set(cluster.objs.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name));
    const all = pods(cluster);
    for (const p of all)
        if (p.ns !== "default" && !namespaces.has(p.ns))
            refuse(`namespace ${p.ns} of ${p.workload.kind} ${p.workload.metadata.name} is not created`);
    const runs = all.flatMap((p) => translatePod(cluster, p, ctx));
    // Every Service selects at least one pod, and each of its ports reaches a container port.
    const services = [];
    for (const s of cluster.of("Service")) {
        if (!s.spec.selector) continue;
        const mine = runs.filter((r) => r.role === "main" && all.find((p) => `${p.ns}/${p.name}` === r.pod &&
            p.ns === s.metadata.namespace && selects(s.spec.selector, p.labels)));
        if (!mine.length) {
            //  A workload scaled to zero (echo-canary between rollouts) has no
            //  pod yet: its Service is right when its template's labels match.
            const idle = cluster.objs.some((w) => WORKLOADS.has(w.kind) && w.kind !== "Pod" &&
                w.metadata.namespace === s.metadata.namespace && (w.spec.replicas ?? 1) === 0 &&
                selects(s.spec.selector, w.spec.template?.metadata?.labels));
            if (idle) continue;
            refuse(`Service ${s.metadata.namespace}/${s.metadata.name} selects no pod`);
        }
        for (const port of s.spec.ports) {
            const tp = port.targetPort ?? port.port;
            for (const r of new Set(mine.map((m) => m.pod))) {
                const cs = mine.filter((m) => m.pod === r);
                const hit = cs.flatMap((m) => m.ports)
                    .find((p) => (typeof tp === "number" ? p.containerPort === tp : p.name === tp));
                if (!hit && typeof tp !== "number")
                    refuse(`Service ${s.metadata.name} port ${port.name || port.port}: ` +
                        `no container of pod ${r} has a port named ${tp}`);
                services.push({ ns: s.metadata.namespace, name: s.metadata.name, portName: port.name,
                    port: port.port, run: cs[0].name, containerPort: hit ? hit.containerPort : tp });
            }
        }
    }
    // An Ingress only forwards: its backends must be Service ports that exist.
    const ingresses = [];
    for (const ing of cluster.of("Ingress")) {
        const backs = (ing.spec.rules || []).flatMap((r) => r.http?.paths || []).map((p) => p.backend.service);
        if (ing.spec.defaultBackend?.service) backs.push(ing.spec.defaultBackend.service);
        for (const b of backs) {
            const port = b.port.name || String(b.port.number);
            if (!services.some((s) => s.ns === ing.metadata.namespace && s.name === b.name &&
                (s.portName === b.port.name || s.port === b.port.number)))
                refuse(`Ingress ${ing.metadata.name}: backend ${b.name}:${port} is no Service port`);
            const hosts = (ing.spec.rules || []).map((r) => r.host);
            ingresses.push({ name: ing.metadata.name, hosts, service: `${b.name}:${port}` });
        }
    }
    return { runs, services, ingresses, network: ctx.network, images: [...ctx.images], nonRoot: ctx.nonRoot };
}

// ------------------------------------------------------------ docker side
function docker(args, opts = {}) {
    const r = spawnSync(DOCKER, args, { encoding: "utf8", ...opts });
    if (r.status !== 0 && !opts.mayFail) die(`docker ${args.slice(0, 3).join(" ")}...: ${(r.stderr || "").trim()}`);
    return r;
}

function inspect(name, fmt) { return docker(["inspect", "-f", fmt, name], { mayFail: true }).stdout.trim(); }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function probeOnce(run, ip, p = run.probe) {
    const port = (x) => (typeof x === "number" ? x : run.ports.find((q) => q.name === x)?.containerPort);
    const timeout = (p.timeoutSeconds || 1) * 1000 + 2000;
    if (p.exec) return docker(["exec", run.name, ...p.exec.command], { mayFail: true, timeout }).status === 0;
    if (p.httpGet) {
        const g = p.httpGet;
        const url = `${(g.scheme || "HTTP").toLowerCase()}://${g.host || ip}:${port(g.port)}${g.path || "/"}`;
        try {
            const headers = Object.fromEntries((g.httpHeaders || []).map((h) => [h.name, h.value]));
            const r = await fetch(url, { headers, signal: AbortSignal.timeout((p.timeoutSeconds || 1) * 1000 + 1000) });
            return r.status >= 200 && r.status < 400;
        } catch { return false; }
    }
    if (p.tcpSocket) {
        return new Promise((res) => {
            const s = net.connect({ host: p.tcpSocket.host || ip, port: port(p.tcpSocket.port), timeout: 2000 },
                () => { s.destroy(); res(true); });
            s.on("error", () => res(false));
            s.on("timeout", () => { s.destroy(); res(false); });
        });
    }
    return false;
}

function explain(run) {
    const st = inspect(run.name, "{{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}}");
    const logs = docker(["logs", "--tail", "15", run.name], { mayFail: true });
    return `${run.pod} container ${run.container} (${run.name}): ${st}\n` +
        `${(logs.stdout + logs.stderr).trim().split("\n").map((l) => "    | " + l).join("\n")}`;
}

async function up(rendered, store, work, run, entry) {
    let plan;
    try { plan = translate(rendered, store, work, run); } catch (e) { if (e instanceof Refusal) die(e.message); throw e; }
    for (const img of plan.images)
        if (docker(["image", "inspect", img], { mayFail: true }).status !== 0)
            die(`image ${img} (named by the overlay) is not in the engine`);
    // runAsNonRoot: the kubelet refuses a root or non-numeric image user.
    for (const n of plan.nonRoot) {
        if (n.uid !== undefined) { if (n.uid === 0) die(`${n.where}: runAsNonRoot with runAsUser 0`); continue; }
        const u = inspect(n.image, "{{.Config.User}}").split(":")[0];
        if (!/^[0-9]+$/.test(u) || u === "0")
            die(`${n.where}: runAsNonRoot, but image ${n.image} runs as user "${u}" (not a non-zero number)`);
    }
    docker(["network", "create", "--label", `${RUN_LABEL}=${run}`, plan.network]);
    // Init containers run to completion first, then the rest start together, as pods do.
    for (const r of plan.runs.filter((x) => x.role === "sandbox" || x.role === "init")) {
        docker(["run", ...r.args]);
        if (r.role === "init") {
            const code = docker(["wait", r.name]).stdout.trim();
            if (code !== "0") die(`init container failed:\n${explain(r)}`);
        }
    }
    // Four `docker run`s at a time: pods start together in a cluster too.
    const queue = plan.runs.filter((x) => x.role === "main" || x.role === "job");
    const starter = async () => {
        for (let r; (r = queue.shift());) {
            const res = await new Promise((ok) =>
                execFile(DOCKER, ["run", ...r.args], (err, out, errout) => ok({ err, errout })));
            if (res.err) die(`docker run of ${r.pod} container ${r.container}: ${res.errout.trim()}`);
        }
    };
    await Promise.all([1, 2, 3, 4].map(starter));
    // Readiness: every main container's probe passes (no probe: running), every Job's exits 0.
    const deadline = Date.now() + Number(process.env.VZ_K8S_READY_S || 120) * 1000;
    let pending = plan.runs.filter((x) => x.role === "main" || x.role === "job");
    while (pending.length) {
        const still = [];
        for (const r of pending) {
            const state = inspect(r.name, "{{.State.Status}} {{.State.ExitCode}}");
            if (r.role === "job") { if (state !== "exited 0") still.push(r); continue; }
            const ip = inspect(r.name, `{{(index .NetworkSettings.Networks "${plan.network}").IPAddress}}`);
            if (!state.startsWith("running") || !(r.probe ? await probeOnce(r, ip) : true)) still.push(r);
        }
        pending = still;
        if (!pending.length) break;
        if (Date.now() > deadline)
            die(`not ready within ${process.env.VZ_K8S_READY_S || 120} s:\n${pending.map(explain).join("\n")}`);
        await sleep(500);
    }
    // Once ready, the liveness probes pass too (a failing one would restart the pod forever).
    for (const r of plan.runs.filter((x) => x.role === "main" && x.liveness)) {
        const ip = inspect(r.name, `{{(index .NetworkSettings.Networks "${plan.network}").IPAddress}}`);
        if (!(await probeOnce(r, ip, r.liveness))) die(`liveness probe fails once ready:\n${explain(r)}`);
    }
    const restarts = plan.runs.filter((r) => r.role === "main")
        .map((r) => [r.pod, Number(inspect(r.name, "{{.RestartCount}}"))])
        .filter(([, n]) => n > 0);
    // The entry: the Ingress' backend when there is one (the controller itself,
    // TLS and host routing are not run), else ENTRY; Service name:port (name
    // or number), resolved to its first pod's container port.
    const backs = new Set(plan.ingresses.map((i) => i.service));
    if (backs.size > 1) die(`Ingress backends differ (${[...backs].join(", ")}): which is the entry?`);
    if (backs.size) entry = [...backs][0];
    const [svc, port] = entry.split(":");
    const hit = plan.services.find((s) => s.name === svc && (s.portName === port || String(s.port) === port));
    if (!hit) die(`entry Service ${entry} not found`);
    const ip = inspect(hit.run, `{{(index .NetworkSettings.Networks "${plan.network}").IPAddress}}`);
    console.log(JSON.stringify({
        url: `http://${ip}:${hit.containerPort}`, entry, containers: plan.runs.filter((r) => r.role !== "sandbox").length,
        restarts: Object.fromEntries(restarts), ingresses: plan.ingresses, images: plan.images,
    }));
}

function down(run) {
    const list = (args) => docker([...args, "--filter", `label=${RUN_LABEL}=${run}`], { mayFail: true })
        .stdout.split("\n").filter(Boolean);
    const ids = list(["ps", "-aq"]);
    if (ids.length) docker(["rm", "-f", "-v", ...ids], { mayFail: true });
    const nets = list(["network", "ls", "-q"]);
    if (nets.length) docker(["network", "rm", ...nets], { mayFail: true });
}

// Shell-quoted docker commands, for a person (and the self-check) to read.
function plan(rendered, store, work, run) {
    let p;
    try { p = translate(rendered, store, work, run); } catch (e) { if (e instanceof Refusal) die(e.message); throw e; }
    const q = (s) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
    for (const r of p.runs) console.log(["docker", "run", ...r.args].map(q).join(" "));
}

// The images the workloads of a rendered FILE run, one a line.
function images(file) {
    const out = new Set();
    for (const o of readDocs(file).filter((x) => WORKLOADS.has(x.kind))) {
        const spec = o.kind === "Pod" ? o.spec : o.spec.template.spec;
        for (const c of [...(spec.initContainers || []), ...spec.containers]) out.add(c.image);
    }
    console.log([...out].sort().join("\n"));
}

// The self-check's deliberate defect: env NAME of every container of one workload set to VALUE.
function setenv(file, which, name, value) {
    const [kind, wname] = which.split("/");
    const objs = readDocs(file);
    let hits = 0;
    for (const o of objs.filter((x) => x.kind === kind && x.metadata.name === wname))
        for (const c of o.spec.template.spec.containers)
            for (const e of c.env || []) if (e.name === name) { e.value = value; delete e.valueFrom; hits++; }
    if (!hits) die(`setenv: no env ${name} in ${which}`);
    fs.writeFileSync(file, objs.map((o) => YAML.stringify(o)).join("---\n"));
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "kubectl") kubectl(args);
else if (cmd === "plan" && args.length === 4) plan(...args);
else if (cmd === "up" && args.length === 5) await up(...args);
else if (cmd === "down" && args.length === 1) down(args[0]);
else if (cmd === "setenv" && args.length === 4) setenv(...args);
else if (cmd === "images" && args.length === 1) images(args[0]);
else die("usage: kubectl ARGS... | plan RENDERED STORE WORK RUN | up RENDERED STORE WORK RUN SERVICE:PORT\n" +
    "       | down RUN | images FILE | setenv FILE KIND/NAME VAR VALUE");
