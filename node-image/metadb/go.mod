module kindred.local/metadb

go 1.22

require go.etcd.io/bbolt v1.4.3
