-- hostile: a profile location that is a 40-level binary DAG (outside the "properties" scope, so only the generic depth limit applies): 2^40 leaves encoded into the request body (memory: deep nesting via host buffers)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function(_, out)
    local t = { city = "x" }
    for _ = 1, 40 do t = { a = t, b = t } end
    out:profile { location = t }
  end,
}
