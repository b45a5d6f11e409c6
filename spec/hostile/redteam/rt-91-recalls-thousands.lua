-- hostile: 5000 recalls of distinct missing keys in one event, a loop that ends well inside the cap (a script looking up every line item): in a worker each is a round trip to the parent; it must map as under map, not trip a recall limit or the watchdog (protocol: recall floods that are legal)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    local found = 0
    for i = 1, 5000 do if out:recall("rt91:item:" .. i) ~= nil then found = found + 1 end end
    return found
  end,
}
