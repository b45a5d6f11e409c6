-- hostile: recall with NUL bytes in the key, to read another key through a C string cut over the channel (protocol: recall keys)
-- expect: failed
-- reason: recall
return {
  ["return.created"] = function(_, out)
    local v = out:recall("benign:seen\0anything") or out:recall("benign:last\0anything")
    if v ~= nil then out:fail("escaped: recall with a NUL key read " .. tostring(v)) end
  end,
}
