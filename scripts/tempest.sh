#!/usr/bin/env bash
# Runs a focused subset of tempest's API tests (the OpenStack conformance suite) against a running bootflow
# API, e.g. `npm start`'s: writes a tempest workspace with a tempest.conf generated from the cloud's
# admin-openrc.sh (tempest's dynamic credentials then create the admin, member and reader accounts of each
# test class through the Keystone API), and runs it with concurrency 1 (2 cores). Needs tempest from
# scripts/setup-openstack-clients.sh. Usage:
#   BOOTFLOW_DATA=./data scripts/tempest.sh [regex]      (default: the subset below; output in $workspace)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${BOOTFLOW_DATA:-$root/data}"
tempest="$root/.openstack/tempest-venv/bin/tempest"
openstack="$root/.openstack/venv/bin/openstack"
[ -x "$tempest" ] && [ -x "$openstack" ] || { echo "tempest.sh: run scripts/setup-openstack-clients.sh first" >&2; exit 1; }
[ -f "$data/admin-openrc.sh" ] || { echo "tempest.sh: no $data/admin-openrc.sh: is npm start running with BOOTFLOW_DATA=$data?" >&2; exit 1; }
# shellcheck disable=SC1091
source "$data/admin-openrc.sh"
workspace="$data/tempest"
regex="${1:-^tempest\.api\.(compute\.(flavors|keypairs|limits|test_versions|servers\.(test_create_server|test_list_server_filters|test_servers_negative|test_availability_zone|test_instance_actions|test_server_addresses|test_delete_server))|identity\.v3\.(test_tokens|test_projects|test_users|test_catalog|test_api_discovery)|identity\.admin\.v3\.(test_projects|test_users|test_tokens|test_list_projects|test_list_users)|image\.v2\.test_images|network\.test_networks)}"

image_id="$("$openstack" image show cirros -f value -c id)" ||
  { echo "tempest.sh: no image 'cirros' visible to $OS_USERNAME at $OS_AUTH_URL (the bootstrap registers it)" >&2; exit 1; }
network_name="$("$openstack" network list --external -f value -c Name 2>/dev/null | head -n1)"
network_name="${network_name:-public}"
# The compute hosts up now (npm start registers three): tempest's multinode tests (servers on the same or
# different hosts, server groups with min_count=2) run when there are at least two.
compute_nodes="$("$openstack" hypervisor list -f value -c State 2>/dev/null | grep -c '^up$' || true)"
[ "${compute_nodes:-0}" -ge 1 ] || compute_nodes=1
# The external network routers take their gateway and floating IPs their address from (tempest's
# public_network_id: test_routers, test_floating_ips).
public_network_id="$("$openstack" network show "$network_name" -f value -c id 2>/dev/null || true)"
# `tempest init` names a workspace after its folder and refuses a name already in ~/.tempest/workspace.yaml:
# every data dir's workspace is called 'tempest', so the second cloud's init failed. A name of its own per
# path; an entry left by a removed data dir is dropped first.
workspace_name="bootflow-$(printf '%s' "$workspace" | sha1sum | cut -c1-12)"
if [ ! -d "$workspace" ]; then
  "$tempest" workspace remove --name "$workspace_name" >/dev/null 2>&1 || true
  "$tempest" init --name "$workspace_name" "$workspace" >/dev/null ||
    { echo "tempest.sh: 'tempest init --name $workspace_name $workspace' failed" >&2; exit 1; }
fi
cat >"$workspace/etc/tempest.conf" <<CONF
[DEFAULT]
log_file = tempest.log

[auth]
use_dynamic_credentials = true
# Dynamic credentials: a project and users with member / reader / admin per test class, made through the
# Keystone API; no isolated networks (bootflow's routers are recorded only, nothing routes): servers go on
# the shared network.
create_isolated_networks = false
tempest_roles = member
admin_username = $OS_USERNAME
admin_password = $OS_PASSWORD
admin_project_name = $OS_PROJECT_NAME
admin_domain_name = ${OS_USER_DOMAIN_NAME:-Default}

[identity]
uri_v3 = $OS_AUTH_URL/v3
auth_version = v3
region = ${OS_REGION_NAME:-RegionOne}
v3_endpoint_type = public

[identity-feature-enabled]
api_v3 = true
application_credentials = true
access_rules = false
trust = false
project_tags = true
security_compliance = false

[compute]
image_ref = $image_id
image_ref_alt = $image_id
flavor_ref = 1
flavor_ref_alt = 2
min_compute_nodes = $compute_nodes
fixed_network_name = $network_name
min_microversion = 2.1
max_microversion = 2.79
build_timeout = 180
endpoint_type = publicURL

[compute-feature-enabled]
change_password = false
resize = false
cold_migration = false
live_migration = false
pause = true
shelve = false
suspend = true
snapshot = true
rescue = false
console_output = true
interface_attach = false
personality = false
config_drive = false
metadata_service = false
vnc_console = false
serial_console = false
spice_console = false
rdp_console = false
block_migration_for_live_migration = false
scheduler_enabled_filters = AvailabilityZoneFilter,ComputeFilter,RamFilter,DiskFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,SameHostFilter,DifferentHostFilter

[image]
image_path =
disk_formats = qcow2,raw
container_formats = bare

[image-feature-enabled]
import_image = false
os_glance_reserved = false

[network]
shared_physical_network = true
project_networks_reachable = false
floating_network_name =
public_network_id = $public_network_id

[network-feature-enabled]
ipv6 = false
# The extensions bootflow's Neutron serves (GET /v2.0/extensions): routers (recorded only), no quotas, agents, ...
# 'tag' is the pre-Stein alias tempest's TagsTest (networks' tags) still asks for; Neutron serves those tags
# as standard-attr-tag, which is left out here because TagsExtTest's setup needs routers and subnet pools.
api_extensions = binding,standard-attr-description,external-net,network-mtu,project-id,security-group,standard-attr-timestamp,ip-substring-filtering,allowed-address-pairs,tag,router,extraroute,ext-gw-mode,filter-validation
port_security = false

[validation]
run_validation = false

[volume]
catalog_type = block-storage
max_microversion = 3.50

[volume-feature-enabled]
# What bootflow's Cinder has (README "differ"): snapshots, no backups or clones, and these extensions.
backup = false
snapshot = true
clone = false
api_extensions = os-availability-zone,os-extended-snapshot-attributes,os-volume-actions,os-vol-host-attr,os-vol-image-meta,os-vol-mig-status-attr,os-vol-tenant-attr

[service_available]
nova = true
glance = true
neutron = true
cinder = true
swift = false
heat = false
horizon = false
CONF
cd "$workspace"
echo "tempest.sh: $workspace/etc/tempest.conf against $OS_AUTH_URL; running '$regex' (concurrency 1)" >&2
exec "$tempest" run --concurrency 1 --regex "$regex"
