-- Argo CD action discovery for keypool.dev/KeyPool: offers "probe" on every KeyPool.
local actions = {}
actions["probe"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-stethoscope"}
return actions
