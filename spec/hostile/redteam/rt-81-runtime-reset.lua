-- hostile: requires the host's own returnflow.runtime, unregisters every file (reset) and registers a handler of its own for every trigger that re-identifies the profile: later events must run the tenant's files as loaded (state leak: host-only module; silent drops)
-- expect: harmless
return {
  ["return.created"] = function()
    pcall(function()
      local runtime = require "returnflow.runtime"
      runtime.reset()
      runtime.register("evil.lua", { ["*"] = function(_, out) out:identify { email = "attacker@127.0.0.1" } end },
                       function() return 1 end)
    end)
  end,
}
