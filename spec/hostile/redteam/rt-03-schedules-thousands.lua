-- hostile: 900 schedules (just under the 1000 a worker may return) with distinct keys that look like frames (length prefixes, JSON, CR/LF, quotes): each must come back intact, nothing leaks into the next events (protocol: many results)
-- expect: harmless
local junk = { "\1\0\0\0", "\127\127\127\31", '{"status":"mapped"}', "\r\n\r\n", '"]}', "\\u0000" }
return {
  ["return.created"] = function(_, out)
    for i = 1, 900 do
      local key = ("sched:%d:%s"):format(i, (junk[i % #junk + 1]:gsub("\0", "0")))
      out:schedule(key, 86400 + i, "Later", { i = i })
    end
  end,
}
