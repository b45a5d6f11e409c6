-- hostile: a sparse array that cjson would expand into a billion nulls (a huge C-side buffer)
-- expect: harmless
local cjson = require "cjson"
return { ["return.created"] = function(ev, out)
  local ok, s = pcall(cjson.encode, { [1] = 1, [1e9] = 2 })
  if ok and #s > 1e6 then error("encoded a huge sparse array") end
end }
