// Pins the Lua VM Argo CD runs health checks in, for test/gitops.
// Built by test/gitops/checks.ts (tools/control-plane/binaries.ts' ensureBuilt); never imported by Usher itself.
module usher.dev/tools/argo-health

go 1.26.0

require github.com/yuin/gopher-lua v1.1.2
