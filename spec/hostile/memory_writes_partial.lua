-- hostile: plants memory writes the host reads after the script, one of which fails late, so the
-- ones before it would be kept for the next event though the event failed
-- expect: failed
return { ["return.created"] = function(ev, out)
  local writes = out.memory_writes
  writes[#writes + 1] = { key = "benign:last", value = "forged" }
  writes[#writes + 1] = setmetatable({ value = 1 }, { __index = function(_, k)
    if k == "key" then error("late failure") end
  end })
end }
