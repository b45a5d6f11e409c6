-- hostile: remembers a value, then fails: the write must not reach the next event's recall
-- expect: failed
-- reason: after remembering
return { ["return.created"] = function(ev, out)
  out:remember("benign:last", "forged")
  error("fails after remembering")
end }
