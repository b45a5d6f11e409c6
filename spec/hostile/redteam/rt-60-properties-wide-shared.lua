-- hostile: event properties within Klaviyo's depth and top-level key limits, built from shared 60-key levels 5 deep: 60^5 = 7.8e8 leaves from 300 Lua table slots (memory: big properties encoded; watchdog: long host work)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function(_, out)
    local level = "leaf"
    for _ = 1, 5 do
      local t = {}
      for i = 1, 60 do t["k" .. i] = level end
      level = t
    end
    out:track("Wide", { root = level })
  end,
}
