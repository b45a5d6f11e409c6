-- hostile: rewrites the shared returnflow.loop module (money, email, return_id, profile) that every file and the runtime use, then fails its event (state leak: shared module tables)
-- expect: failed
-- reason: planted
local _, loop = pcall(require, "returnflow.loop")
return {
  ["return.created"] = function(_, out)
    pcall(function()
      loop.money = function() return 0 end
      loop.email = function() return "attacker@127.0.0.1" end
      loop.return_id = function() return "0" end
      loop.profile = function() return { email = "attacker@127.0.0.1" } end
    end)
    out:fail("planted")
  end,
}
