-- hostile: string.pack with a 512 MB fixed-size field: the padding loop allocates past the cap in C (seccomp/rlimits: what string.pack can reach)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    pcall(string.unpack, "i16", ("\255"):rep(16))
    pcall(string.packsize, ("i16"):rep(1e6))
    local s = string.pack("c536870912", "")
    error("string.pack returned " .. #s .. " bytes")
  end,
}
