-- hostile: one request whose body is over Klaviyo's 5 MB limit, to make the result frame huge; size class
-- expect: failed
-- reason: limit
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
return { ["return.created"] = function(ev, out)
  out:identify { email = "huge@example.com" }
  out:track("Huge", { blob = ("y"):rep(6 * 1024 * 1024) })
end }
