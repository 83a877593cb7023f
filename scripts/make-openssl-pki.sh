#!/usr/bin/env bash
# Builds a PKI with the OpenSSL CLI alone (no vdx), for interoperability tests:
#   DIR/ca.pem, ca.key            EC root CA ("openssl ca" database under DIR/db)
#   DIR/signer.{pem,key}          EC agency signer: digitalSignature, nonRepudiation; emailProtection
#   DIR/ec-recip.{pem,key}        EC recipient (keyAgreement)
#   DIR/rsa-recip.{pem,key}       RSA-2048 recipient (keyEncipherment)
#   DIR/expired.{pem,key}         EC signer whose validity ended in 2021
#   DIR/notyet.{pem,key}          EC signer whose validity starts in 2099
#   DIR/noku.{pem,key}            EC certificate with keyUsage keyEncipherment only (may not sign)
#   DIR/revoked.{pem,key}         EC signer, revoked in DIR/ca.crl
#   DIR/ca.crl                    CRL of the root (PEM)
#   DIR/other-ca.pem, other.{pem,key}  an unrelated root and a signer it issued
set -euo pipefail
dir=${1:?usage: make-openssl-pki.sh DIR}
mkdir -p "$dir/db"
cd "$dir"
: > db/index.txt
echo 1000 > db/serial
echo 1000 > db/crlnumber

cat > ca.cnf <<'CNF'
[ca]
default_ca = dev
[dev]
dir = .
database = db/index.txt
serial = db/serial
crlnumber = db/crlnumber
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_days = 365
default_crl_days = 7
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
organizationIdentifier = optional
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[signer]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ec_recipient]
basicConstraints = CA:FALSE
keyUsage = critical,keyAgreement
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[rsa_recipient]
basicConstraints = CA:FALSE
keyUsage = critical,keyEncipherment,dataEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[no_signing]
basicConstraints = CA:FALSE
keyUsage = critical,keyEncipherment
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ec_key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -subj "/CN=OpenSSL Test Root" -days 3650 \
  -config ca.cnf -extensions root

# issue NAME EXTENSIONS KEYTYPE [openssl ca options...]
issue() {
  local name=$1 ext=$2 type=$3
  shift 3
  if [[ $type == rsa ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null
  else
    ec_key "$name.key"
  fi
  openssl req -new -key "$name.key" -subj "/CN=$name/organizationIdentifier=000.00.00.T$RANDOM" \
    -config ca.cnf -out "$name.csr"
  openssl ca -batch -config ca.cnf -extensions "$ext" -in "$name.csr" -out "$name.pem" -notext "$@" 2>/dev/null
  rm -f "$name.csr"
}

issue signer signer ec
issue ec-recip ec_recipient ec
issue rsa-recip rsa_recipient rsa
issue expired signer ec -startdate 20200101000000Z -enddate 20210101000000Z
issue notyet signer ec -startdate 20990101000000Z -enddate 20991231000000Z
issue noku no_signing ec
issue revoked signer ec
openssl ca -batch -config ca.cnf -revoke revoked.pem -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out ca.crl 2>/dev/null

ec_key other-ca.key
openssl req -x509 -new -key other-ca.key -out other-ca.pem -subj "/CN=Unrelated Root" -days 3650 \
  -config ca.cnf -extensions root
ec_key other.key
openssl req -new -key other.key -subj "/CN=other" -config ca.cnf -out other.csr
openssl x509 -req -in other.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -days 30 \
  -extfile ca.cnf -extensions signer -out other.pem 2>/dev/null
rm -f other.csr
