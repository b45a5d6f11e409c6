-- hostile: reconfigures the shared cjson (depth limits, sparse arrays) for everything after it
-- expect: harmless
local cjson = require "cjson"
return { ["return.created"] = function(ev, out)
  for _, name in ipairs { "encode_max_depth", "decode_max_depth", "encode_sparse_array",
                          "encode_keep_buffer", "encode_invalid_numbers", "encode_number_precision" } do
    if cjson[name] ~= nil then
      pcall(cjson[name], 100000)
      error("cjson setter exposed: " .. name)
    end
  end
  local ok = pcall(function() cjson.encode = function() return "forged" end end)
  if ok and cjson.encode({}) == "forged" then error("cjson was changed") end
end }
