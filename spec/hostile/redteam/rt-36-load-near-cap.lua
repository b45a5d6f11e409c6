-- hostile: burns ~70% of the cap in CPU at load time and again in the attack event: slow but legal, it must map (a wall-clock watchdog on a busy 2-core machine must not kill it) (watchdog: slow-but-not-stuck)
-- expect: harmless
-- cap: 1
local function burn(s) local t = os.clock() + s local x = 0 while os.clock() < t do x = x + 1 end return x end
burn(0.7)
return {
  ["return.created"] = function() burn(0.7) end,
}
