// Part of the chart tests (scripts/install-k8s-schemas.sh copies it next to its node_modules).
// Validates Kubernetes objects (a JSON array on stdin) against the Kubernetes OpenAPI schemas of the
// kubernetes-models package (and the Prometheus Operator's for PodMonitor). Prints one line per
// object; exits 1 when any is invalid or of an unknown kind.
import { readFileSync } from "node:fs";
const docs = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const doc of docs) {
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
  const pkg = group === "monitoring.coreos.com" ? "@kubernetes-models/prometheus-operator/monitoring.coreos.com" : (group ? `kubernetes-models/${group}` : "kubernetes-models");
  const what = `${doc.kind} ${doc.metadata?.name}`;
  let Model;
  try {
    Model = (await import(`${pkg}/${version}/${doc.kind}`))[doc.kind];
  } catch (e) {
    console.log(`UNKNOWN ${what}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${what}`);
  } catch (e) {
    console.log(`INVALID ${what}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
