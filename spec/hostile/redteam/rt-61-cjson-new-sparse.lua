-- hostile: a fresh cjson instance (cjson.new) whose settings the shared one's lock-down does not cover: sparse arrays allowed, then encode {[2^28] = 1}: ~1.3 GB of nulls in cjson's own malloc'd buffer (memory: cap bypass via library buffers)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local cjson = require "cjson"
    local c = cjson.new and cjson.new() or cjson
    pcall(c.encode_sparse_array, false, 0)
    local s = c.encode({ [1 << 28] = 1 })
    error("encoded " .. #s .. " bytes", 0)
  end,
}
