-- hostile: a runtime error whose value is a 12 MB string (not out:fail): cut on its way to the result, the dead letter and stderr (error values that are huge strings)
-- expect: failed
-- reason: ^EEEE
return {
  ["return.created"] = function() error(("E"):rep(12 << 20), 0) end,
}
