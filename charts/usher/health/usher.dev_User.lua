-- Argo CD health check for usher.dev/User, for argocd-cm's
-- resource.customizations.health.usher.dev_User (README: "Argo CD"). A User's
-- own conditions each come from one of Usher's controllers (Provisioned: its
-- account at the identity provider; Bound: its RoleBindings), and Ready,
-- Stalled and Reconciling sum them up; this reads the summary, as kstatus
-- does. Uses only Lua's base and table libraries.
--
--   no status, or an edit not yet seen        Progressing
--   Stalled=True (AccountExists, BindForbidden, NamespaceOutsideTenant ...)  Degraded
--   Ready=True                                Healthy
--   anything else (a wait that ends by itself: ProviderUnavailable, WaitingForAccount ...)  Progressing
-- test/gitops/health.int.test.ts runs it on User objects of each kind.
local hs = {}

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to reconcile the User."
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to reconcile generation " .. tostring(generation) .. "."
  return hs
end

local by = {}
for _, c in ipairs(obj.status.conditions) do
  by[c.type] = c
end

if by.Stalled ~= nil and by.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = by.Stalled.message or by.Stalled.reason or "Stalled."
elseif by.Ready ~= nil and by.Ready.status == "True" then
  hs.status = "Healthy"
  hs.message = by.Ready.message or "Ready."
else
  hs.status = "Progressing"
  local why = by.Ready or by.Reconciling
  hs.message = (why and (why.message or why.reason)) or "Waiting for Usher to reconcile the User."
end
return hs
