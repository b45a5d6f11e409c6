-- hostile: raises a plain table as the error value (reported with an empty message before)
-- expect: failed
-- reason: table
return { ["return.created"] = function(ev, out)
  error({})
end }
