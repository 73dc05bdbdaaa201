# PostgreSQL for the `postgres` tests: the machine's cluster on 127.0.0.1:5432 (trust auth,
# user postgres), started if it is down, installed if it is missing. Each run gets a
# throwaway database, dropped on exit, named in EP_TEST_POSTGRES_URL.

pg_cluster_version() {
  ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

install_postgres() {
  echo "PostgreSQL is not installed; installing it from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  local version
  version=$(pg_cluster_version)
  # The tests connect over TCP as postgres without a password, as on the development machines.
  sed -i '1i host all postgres 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
}

start_postgres() {
  local psql=(psql -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 -q -X)
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null || install_postgres
    local version
    version=$(pg_cluster_version)
    echo "starting PostgreSQL $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    local i
    for ((i = 0; i < 60; i++)); do
      pg_isready -h 127.0.0.1 -p 5432 -q && break
      sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; return 1; }
  fi
  local db="ep_test_$(date +%s)_$$"
  "${psql[@]}" -d postgres -c "CREATE DATABASE \"$db\""
  on_exit "psql -h 127.0.0.1 -p 5432 -U postgres -q -X -d postgres -c 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)'"
  export EP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/$db"
  echo "PostgreSQL test database: $db"
}
