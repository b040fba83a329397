-- Argo CD health check for usher.dev/UserInvitation, for argocd-cm's
-- resource.customizations.health.usher.dev_UserInvitation (README: "Argo CD").
-- It reads what Usher writes: status.observedGeneration, status.phase and the
-- Ready, Reconciling and Stalled conditions, whose messages say what to do.
-- Uses only Lua's base and table libraries: argocd-cm runs a check without the
-- others unless useOpenLibs is set.
--
--   not reconciled yet, or an edit not yet seen    Progressing
--   Pending, a mail being sent or retried          Progressing
--   Pending, no mail server (share it by hand)     Suspended
--   Sent, Accepted, UserCreated                    Healthy
--   Failed, Expired (Stalled=True)                 Degraded
-- test/gitops/health.int.test.ts runs it on live invitations in every phase.
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to reconcile the invitation."
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for Usher to reconcile generation " .. tostring(generation) .. "."
  return hs
end

local phase = obj.status.phase
local ready = condition("Ready")
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
local delivered = condition("MailDelivered")

if (stalled ~= nil and stalled.status == "True") or phase == "Failed" or phase == "Expired" then
  hs.status = "Degraded"
  hs.message = messageOf(stalled, messageOf(ready, "The invitation is " .. phase .. "."))
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling, "Usher is working on the invitation.")
  return hs
end

if phase == "Pending" and delivered ~= nil and delivered.reason == "NoMailServer" and ready ~= nil and ready.status == "True" then
  hs.status = "Suspended"
  hs.message = messageOf(ready, "No mail server is configured: share the link by hand.")
  return hs
end

if (phase == "Sent" or phase == "Accepted" or phase == "UserCreated") and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "The invitation is " .. phase .. ".")
  return hs
end

hs.status = "Progressing"
hs.message = messageOf(ready, "The invitation is " .. phase .. ".")
return hs
