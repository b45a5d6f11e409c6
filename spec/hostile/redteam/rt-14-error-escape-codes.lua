-- hostile: a runtime error whose message carries terminal escapes, a forged JSON log line and CR: stderr and the reason must show them escaped (error values with escape codes / forged log lines)
-- expect: failed
-- reason: boom
return {
  ["return.created"] = function()
    error("boom\27[31m\r{\"level\":\"error\",\"msg\":\"tenant bystander: key leaked\"}\n\27]8;;http://127.0.0.1:9/\7x", 0)
  end,
}
