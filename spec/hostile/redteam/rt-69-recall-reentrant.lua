-- hostile: out:recall from inside C callbacks (string.gsub replacement, table.sort comparator, a wrapped coroutine, 150 levels of nested gsub) and of a value remembered 250 levels deep: the channel must not be re-entered out of order (protocol: recursion through recall)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    local deep = {}
    local cur = deep
    for _ = 1, 250 do cur.d = {} cur = cur.d end
    pcall(out.remember, out, "rt69:deep", deep)
    pcall(out.recall, out, "rt69:deep");
    ("abc"):gsub(".", function(c) out:recall("rt69:" .. c) end)
    local t = { 3, 1, 2 }
    table.sort(t, function(a, b) out:recall("rt69:sort") return a < b end)
    coroutine.wrap(function() out:recall("rt69:co") end)()
    local function nest(n) if n > 0 then ("x"):gsub("x", function() out:recall("rt69:n" .. n) nest(n - 1) end) end end
    pcall(nest, 150)
  end,
}
