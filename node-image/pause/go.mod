module kindred.local/pause

go 1.22
