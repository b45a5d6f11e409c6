-- hostile: decodes a text of millions of tiny values (a host-side tape of 16 bytes a value)
-- expect: harmless
local json = require "returnflow.json"
return { ["return.created"] = function(ev, out)
  local text = "[" .. ("0,"):rep(6000000) .. "0]"
  pcall(json.decode, text)
end }
