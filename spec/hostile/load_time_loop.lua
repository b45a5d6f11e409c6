-- hostile: loops for ever while the folder loads
-- expect: refused
-- reason: cap
-- cap: 0.2
while true do end
