-- Argo CD health check for keypool.dev/KeyPool (Lua 5.1, as Argo CD runs it: gopher-lua).
-- Reads the kstatus conditions the operator writes: Ready, Degraded, Reconciling, Stalled.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to report a status"
  return hs
end

local conditions = status.conditions
local ready = condition(conditions, "Ready")
local generation = obj.metadata.generation

local function behind(observed)
  return generation ~= nil and observed ~= nil and observed < generation
end

-- A status written for an older generation says nothing about the current spec.
if behind(status.observedGeneration) or (ready ~= nil and behind(ready.observedGeneration)) then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled, "Stalled: " .. tostring(stalled.reason))
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "Ready")
  local degraded = condition(conditions, "Degraded")
  if degraded ~= nil and degraded.status == "True" then
    hs.message = hs.message .. "; Degraded: " .. message(degraded, tostring(degraded.reason))
  end
  return hs
end

local reconciling = condition(conditions, "Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = message(reconciling, "Reconciling")
elseif ready ~= nil then
  hs.message = "Ready=" .. tostring(ready.status) .. " (" .. tostring(ready.reason) .. "): " .. message(ready, "")
else
  hs.message = "waiting for the operator to report readiness"
end
return hs
