-- Argo CD health check for usher.dev/User, for argocd-cm's
-- resource.customizations.health.usher.dev_User (README: "Argo CD"). A User's
-- Provisioned condition says whether its account at the identity provider
-- matches it. Uses only Lua's base and table libraries.
--
--   no status, or an edit not yet seen                    Progressing
--   Provisioned=True                                      Healthy
--   Provisioned=False, a wait that ends by itself         Progressing
--     (AcceptanceInProgress, WaitingForPassword, ProviderUnavailable)
--   Provisioned=False, anything else (AccountExists ...)  Degraded
-- Users made before Usher wrote User status have none and stay Progressing;
-- test/gitops/health.int.test.ts runs it on User objects of each kind.
local hs = {}
local retryable = { AcceptanceInProgress = true, WaitingForPassword = true, ProviderUnavailable = true }

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to provision the User."
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to reconcile generation " .. tostring(generation) .. "."
  return hs
end

local provisioned = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Provisioned" then
    provisioned = c
  end
end

if provisioned == nil or provisioned.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to provision the User."
elseif provisioned.status == "True" then
  hs.status = "Healthy"
  hs.message = provisioned.message or "Provisioned."
elseif retryable[provisioned.reason] then
  hs.status = "Progressing"
  hs.message = provisioned.message or provisioned.reason
else
  hs.status = "Degraded"
  hs.message = provisioned.message or provisioned.reason or "Not provisioned."
end
return hs
