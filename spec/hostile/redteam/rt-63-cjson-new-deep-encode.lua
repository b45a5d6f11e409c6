-- hostile: a fresh cjson instance with its encode depth limit lifted encodes a 300,000-level nested table: C recursion past the C stack (memory/stack: deep nesting via a library)
-- expect: failed
return {
  ["return.created"] = function()
    local cjson = require "cjson"
    local c = cjson.new and cjson.new() or cjson
    pcall(c.encode_max_depth, 1e9)
    local t = {}
    for _ = 1, 300000 do t = { t } end
    local ok, err = pcall(c.encode, t)
    error("encoded: " .. tostring(ok) .. " " .. tostring(err):sub(1, 80), 0)
  end,
}
