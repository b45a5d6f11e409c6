-- hostile: unbounded recursion (C stack and Lua stack)
-- expect: failed
return { ["return.created"] = function(ev, out)
  local function f(n) return 1 + f(n + 1) end
  f(1)
end }
