#!/usr/bin/env bash
# Makes a lab certificate authority and one certificate per mip46 identity, for mutual TLS on the
# gRPC API (see deploy/README.md, "Certificates").
#
#   scripts/lab-certs.sh DIR host:h4 host:h6 worker:dp-1 operator:admin engine:e1 ...
#   scripts/lab-certs.sh /etc/mip46/tls engine:e1=engine host:h4=agent worker:r1=home-agent-r1
#
# DIR/ca.pem and DIR/ca.key are made once and reused on later runs (so certificates can be added).
# For each identity KIND:ID it writes DIR/KIND-ID.pem and DIR/KIND-ID.key (mode 0600), or, for
# KIND:ID=NAME, DIR/NAME.pem and DIR/NAME.key: the names the systemd units of deploy/systemd load
# (engine, dataplane, agent, home-agent-<instance>). EC P-256,
# valid for LAB_CERT_DAYS days (default 825). The identity is carried in the subjectAltName URI
# spiffe://mip46/KIND/ID, which is what the engine reads; the subject CN says KIND:ID for people.
# Engine certificates also name the addresses clients dial, ENGINE_SANS (default
# "IP:127.0.0.1,IP:::1,IP:2001:db8:ff::1,DNS:localhost"), because gRPC clients check them.
# This is a lab recipe: the CA key sits next to the certificates, unencrypted.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 DIR KIND:ID ...   (KIND is host, worker, operator or engine)" >&2
  exit 2
fi
dir=$1
shift
days=${LAB_CERT_DAYS:-825}
engine_sans=${ENGINE_SANS:-IP:127.0.0.1,IP:::1,IP:2001:db8:ff::1,DNS:localhost}
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$days" -subj "/O=mip46 lab/CN=mip46 lab CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 644 "$dir/ca.pem"
fi

for identity in "$@"; do
  name=""
  if [[ "$identity" == *=* ]]; then
    name=${identity#*=}
    identity=${identity%%=*}
    if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
      echo "$identity=$name: NAME must be letters, digits and . _ -, starting with a letter or digit" >&2; exit 2
    fi
  fi
  kind=${identity%%:*}
  id=${identity#*:}
  case "$kind" in host|worker|operator|engine) ;; *)
    echo "$identity: the kind must be host, worker, operator or engine" >&2; exit 2 ;;
  esac
  # The engine checks identifiers the same way (services/api/control.ts): no spaces, no commas.
  if [ "$id" = "$identity" ] || ! [[ "$id" =~ ^[A-Za-z0-9][A-Za-z0-9._:@/-]*$ ]]; then
    echo "$identity: ID must be letters, digits and . _ : @ / -, starting with a letter or digit" >&2; exit 2
  fi
  file="$dir/${name:-$kind-${id//[\/:@]/_}}"
  san="URI:spiffe://mip46/$kind/$id"
  usage="clientAuth"
  if [ "$kind" = engine ]; then
    san="$san,$engine_sans"
    usage="serverAuth,clientAuth"
  fi
  ext=$(mktemp)
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$usage" "$san" >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$file.key" -out "$file.csr" -subj "/O=mip46 lab/CN=$kind:$id" 2>/dev/null
  openssl x509 -req -in "$file.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -sha256 -extfile "$ext" -out "$file.pem" 2>/dev/null
  rm -f "$file.csr" "$ext"
  chmod 600 "$file.key"
  chmod 644 "$file.pem"
  echo "$file.pem $file.key ($san)"
done
