local t = {} for i = 1, 1e9 do t[i] = string.rep and i or i end return t
