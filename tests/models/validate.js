// Validate Kubernetes objects (JSON lines on stdin) against kubernetes-models' schemas:
// Gateway API and ArgoCD. Prints one JSON line per object: {name, kind, error|null|"no schema"}.
"use strict";
const readline = require("readline");

const MODELS = {
  "gateway.networking.k8s.io/v1": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1",
  "gateway.networking.k8s.io/v1beta1":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1",
  "argoproj.io/v1alpha1": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1",
};

function check(object) {
  const module = MODELS[object.apiVersion];
  const Model = module && require(module)[object.kind];
  if (!Model) return "no schema";
  try {
    new Model(object).validate();
    return null;
  } catch (error) {
    return String(error.message || error);
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const object = JSON.parse(line);
  const result = { name: object.metadata.name, kind: object.kind, error: check(object) };
  process.stdout.write(JSON.stringify(result) + "\n");
});
