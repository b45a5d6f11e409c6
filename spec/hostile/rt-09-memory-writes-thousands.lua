-- hostile: 5000 memory writes with distinct, frame-like keys and small values: all must be kept or dropped together and framed intact (protocol: many memory writes)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    for i = 1, 5000 do
      out:remember(("rt09:%d:\1\2\3\r\n}"):format(i), { i = i, s = '"]}\\' })
    end
  end,
}
