-- hostile: 900 memory writes (just under the 1000 a worker may return) with distinct, frame-like keys and small values: all must be kept or dropped together and framed intact (protocol: many memory writes)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    for i = 1, 900 do
      out:remember(("rt09:%d:\1\2\3\r\n}"):format(i), { i = i, s = '"]}\\' })
    end
  end,
}
