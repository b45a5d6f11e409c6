-- hostile: 900 cancels (just under the 1000 a worker may return) whose keys mimic frames and other tenants' keys (length headers, "tenant\tkey", JSON, CR/LF, 1000-byte keys); the cancel list must pass intact (protocol: many results)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    for i = 1, 900 do
      local k
      if i % 5 == 0 then k = ("\1\1\1\1"):rep(250) .. i
      elseif i % 5 == 1 then k = "bystander\texpiring:" .. i
      elseif i % 5 == 2 then k = '{"cancel":"expired:' .. i .. '"}'
      elseif i % 5 == 3 then k = "expiring:" .. i .. "\r\nexpired:" .. i
      else k = "\16\16\16\16" .. i end
      out:cancel(k)
    end
  end,
}
