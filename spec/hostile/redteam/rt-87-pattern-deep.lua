-- hostile: patterns built to recurse deeply in a matcher ((a?)^50000 a^50000, 30,000 nested %b groups, a 1 MB pattern of "-" items, a capture-heavy gsub): a bounded matcher must neither overflow the C stack nor run past the cap (watchdog: replaced pattern matcher)
-- expect: failed
return {
  ["return.created"] = function()
    local subject = ("a"):rep(50000)
    pcall(string.match, subject, ("a?"):rep(50000) .. ("a"):rep(50000))
    pcall(string.find, ("("):rep(30000) .. (")"):rep(30000), ("%b()"):rep(200))
    pcall(string.gsub, subject, ("a-"):rep(300000) .. "b", "x")
    pcall(string.gsub, subject, "((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))", "%1%2%3")
    error("patterns returned", 0)
  end,
}
