-- hostile: returnflow.json.encode of a shared-reference graph whose text is 2^40 bytes
-- expect: failed
-- reason: cap
local json = require "returnflow.json"
return { ["return.created"] = function(ev, out)
  local t = { "xxxxxxxxxxxxxxxx" }
  for _ = 1, 40 do t = { t, t } end
  local s, err = json.encode(t)
  error(tostring(err))
end }
