-- hostile: cjson.encode of a shared-reference graph whose text is 2^40 bytes (C-side buffer, no cap)
-- expect: failed
-- reason: cap
local cjson = require "cjson"
return { ["return.created"] = function(ev, out)
  local t = { "xxxxxxxxxxxxxxxx" }
  for _ = 1, 40 do t = { t, t } end
  local ok, err = pcall(cjson.encode, t)
  error(tostring(err))
end }
