-- Argo CD action "probe" for keypool.dev/KeyPool (Lua 5.1): asks the operator to probe every key
-- of the pool now, by setting keypool.dev/probe-requested-at to the current time. The operator
-- probes when the value differs from status.lastProbeRequest, then records it there.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["keypool.dev/probe-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
