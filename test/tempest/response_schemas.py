"""Validates bootflow's compute and volume answers against tempest's own response schemas.

Drives tempest.lib's service clients (they validate every response body and status against
tempest/lib/api_schema/response/... for the microversion set, and check the echoed microversion header)
at every compute microversion 2.1..max and at each volume microversion given. Input: one JSON document on
stdin (see api-tempest-schemas.test.ts). Output: one JSON line {"checked": n, "failures": [...]}; exit 1
when anything failed.
"""
import json
import sys
import time
import traceback

from tempest.lib import auth
from tempest.lib.services.compute import availability_zone_client
from tempest.lib.services.compute import base_compute_client
from tempest.lib.services.compute import extensions_client
from tempest.lib.services.compute import flavors_client
from tempest.lib.services.compute import hypervisor_client
from tempest.lib.services.compute import images_client
from tempest.lib.services.compute import keypairs_client
from tempest.lib.services.compute import limits_client
from tempest.lib.services.compute import server_groups_client
from tempest.lib.services.compute import security_group_rules_client
from tempest.lib.services.compute import security_groups_client
from tempest.lib.services.compute import servers_client
from tempest.lib.services.compute import services_client
from tempest.lib.services.compute import snapshots_client as compute_snapshots_client
from tempest.lib.services.compute import volumes_client as compute_volumes_client
from tempest.lib.services.volume import base_client as volume_base_client
from tempest.lib.services.volume.v3 import snapshots_client
from tempest.lib.services.volume.v3 import volumes_client


def provider(spec, who):
    account = spec[who]
    creds = auth.KeystoneV3Credentials(
        username=account['username'],
        password=account['password'],
        project_name=account['project'],
        user_domain_name='Default',
        project_domain_name='Default',
    )
    p = auth.KeystoneV3AuthProvider(creds, spec['auth_url'])
    p.fill_credentials()
    return p


def check_proxies(check, c, who, minor, spec):
    """The proxy APIs at one microversion: images, groups, volumes, snapshots to 2.35, image metadata to 2.38."""
    at = f'2.{minor} {who}'
    image = spec['image']
    server = spec['servers']['active']
    check(f'{at} list_security_groups_by_server', lambda: c['servers'].list_security_groups_by_server(server))
    check(f'{at} list_extensions', lambda: c['extensions'].list_extensions())
    if minor <= 38:
        check(f'{at} list_image_metadata', lambda: c['images'].list_image_metadata(image))
    if minor > 35:
        return
    check(f'{at} list_images', lambda: c['images'].list_images())
    check(f'{at} list_images detail', lambda: c['images'].list_images(detail=True))
    check(f'{at} show_image', lambda: c['images'].show_image(image))
    check(f'{at} list_security_groups', lambda: c['security_groups'].list_security_groups())
    check(f'{at} os-volumes detail', lambda: c['compute_volumes'].list_volumes(detail=True))
    check(f'{at} os-volumes show', lambda: c['compute_volumes'].show_volume(spec['volumes'][0]))
    check(f'{at} os-snapshots list', lambda: c['compute_snapshots'].list_snapshots())
    check(f'{at} os-snapshots detail', lambda: c['compute_snapshots'].list_snapshots(detail=True))
    check(f'{at} os-snapshots show', lambda: c['compute_snapshots'].show_snapshot(spec['snapshots'][0]))
    if who != 'member':
        return
    group = check(
        f'{at} create_security_group',
        lambda: c['security_groups'].create_security_group(name=f'schema-{minor}', description='d'),
    )
    if not group:
        return
    group_id = group['security_group']['id']
    check(f'{at} show_security_group', lambda: c['security_groups'].show_security_group(group_id))
    rule = check(
        f'{at} create_security_group_rule',
        lambda: c['security_group_rules'].create_security_group_rule(
            parent_group_id=group_id, ip_protocol='tcp', from_port=22, to_port=22
        ),
    )
    if rule:
        rule_id = rule['security_group_rule']['id']
        check(
            f'{at} delete_security_group_rule',
            lambda: c['security_group_rules'].delete_security_group_rule(rule_id),
        )
    check(f'{at} delete_security_group', lambda: c['security_groups'].delete_security_group(group_id))


def main():
    spec = json.load(sys.stdin)
    region = spec['region']
    checked = 0
    failures = []

    def clients(who):
        p = provider(spec, who)
        kw = {'endpoint_type': 'publicURL'}
        return {
            'servers': servers_client.ServersClient(p, 'compute', region, **kw),
            'flavors': flavors_client.FlavorsClient(p, 'compute', region, **kw),
            'keypairs': keypairs_client.KeyPairsClient(p, 'compute', region, **kw),
            'groups': server_groups_client.ServerGroupsClient(p, 'compute', region, **kw),
            'limits': limits_client.LimitsClient(p, 'compute', region, **kw),
            'zones': availability_zone_client.AvailabilityZoneClient(p, 'compute', region, **kw),
            'hypervisors': hypervisor_client.HypervisorClient(p, 'compute', region, **kw),
            'services': services_client.ServicesClient(p, 'compute', region, **kw),
            'volumes': volumes_client.VolumesClient(p, 'volumev3', region, **kw),
            # Nova's proxies (to 2.35; image metadata to 2.38) and extensions.
            'images': images_client.ImagesClient(p, 'compute', region, **kw),
            'security_groups': security_groups_client.SecurityGroupsClient(p, 'compute', region, **kw),
            'security_group_rules': security_group_rules_client.SecurityGroupRulesClient(
                p, 'compute', region, **kw
            ),
            'compute_volumes': compute_volumes_client.VolumesClient(p, 'compute', region, **kw),
            'compute_snapshots': compute_snapshots_client.SnapshotsClient(p, 'compute', region, **kw),
            'extensions': extensions_client.ExtensionsClient(p, 'compute', region, **kw),
            'snapshots': snapshots_client.SnapshotsClient(p, 'volumev3', region, **kw),
        }

    admin = clients('admin')
    member = clients('member')
    servers = spec['servers']

    def check(label, call):
        nonlocal checked
        checked += 1
        try:
            return call()
        except Exception as err:  # a schema mismatch is tempest's InvalidHTTPResponseBody
            failures.append({'check': label, 'error': f'{type(err).__name__}: {err}'[:2000]})
            if spec.get('verbose'):
                traceback.print_exc(file=sys.stderr)
            return None

    for minor in range(1, spec['compute_max_minor'] + 1):
        version = f'2.{minor}'
        base_compute_client.COMPUTE_MICROVERSION = version
        for who, c in (('admin', admin), ('member', member)):
            at = f'{version} {who}'
            check(f'{at} list_servers detail', lambda: c['servers'].list_servers(detail=True))
            check(f'{at} list_servers', lambda: c['servers'].list_servers())
            for state, server_id in servers.items():
                check(f'{at} show_server {state}', lambda: c['servers'].show_server(server_id))
            check(f'{at} list_addresses', lambda: c['servers'].list_addresses(servers['active']))
            actions = check(
                f'{at} list_instance_actions',
                lambda: c['servers'].list_instance_actions(servers['active']),
            )
            if actions:
                request_id = actions['instanceActions'][0]['request_id']
                check(
                    f'{at} show_instance_action',
                    lambda: c['servers'].show_instance_action(servers['active'], request_id),
                )
            check(f'{at} list_flavors detail', lambda: c['flavors'].list_flavors(detail=True))
            check(f'{at} list_flavors', lambda: c['flavors'].list_flavors())
            check(f'{at} show_flavor', lambda: c['flavors'].show_flavor('1'))
            check(f'{at} list_flavor_extra_specs', lambda: c['flavors'].list_flavor_extra_specs('1'))
            check(f'{at} show_limits', lambda: c['limits'].show_limits())
            check(f'{at} list_availability_zones', lambda: c['zones'].list_availability_zones())
            check_proxies(check, c, who, minor, spec)
            name = f'tempest-schema-{who}-{minor}'
            created = check(f'{at} create_keypair', lambda: c['keypairs'].create_keypair(name=name))
            check(f'{at} list_keypairs', lambda: c['keypairs'].list_keypairs())
            if created:
                check(f'{at} show_keypair', lambda: c['keypairs'].show_keypair(name))
                check(f'{at} delete_keypair', lambda: c['keypairs'].delete_keypair(name))
            policy = {'policy': 'anti-affinity'} if minor >= 64 else {'policies': ['anti-affinity']}
            group = check(
                f'{at} create_server_group', lambda: c['groups'].create_server_group(name=name, **policy)
            )
            check(f'{at} list_server_groups', lambda: c['groups'].list_server_groups())
            if group:
                group_id = group['server_group']['id']
                check(f'{at} show_server_group', lambda: c['groups'].show_server_group(group_id))
                check(f'{at} delete_server_group', lambda: c['groups'].delete_server_group(group_id))
        at = f'{version} admin'
        check(f'{at} list_availability_zones detail', lambda: admin['zones'].list_availability_zones(detail=True))
        check(f'{at} list_hypervisors', lambda: admin['hypervisors'].list_hypervisors())
        hypervisors = check(
            f'{at} list_hypervisors detail', lambda: admin['hypervisors'].list_hypervisors(detail=True)
        )
        if hypervisors:
            hypervisor_id = hypervisors['hypervisors'][0]['id']
            check(f'{at} show_hypervisor', lambda: admin['hypervisors'].show_hypervisor(hypervisor_id))
        check(f'{at} list_services', lambda: admin['services'].list_services())

    base_compute_client.COMPUTE_MICROVERSION = None
    for version in spec['volume_versions']:
        volume_base_client.VOLUME_MICROVERSION = version
        for who, c in (('admin', admin), ('member', member)):
            at = f'volume {version} {who}'
            check(f'{at} list_volumes detail', lambda: c['volumes'].list_volumes(detail=True))
            check(f'{at} list_volumes', lambda: c['volumes'].list_volumes())
            for volume_id in spec['volumes']:
                check(f'{at} show_volume', lambda: c['volumes'].show_volume(volume_id))
            # tempest's snapshot schemas are Cinder's base body: the versions before group_snapshot_id (3.14).
            if int(version.split('.')[1]) >= 14:
                continue
            check(f'{at} list_snapshots detail', lambda: c['snapshots'].list_snapshots(detail=True))
            check(f'{at} list_snapshots', lambda: c['snapshots'].list_snapshots())
            for snapshot_id in spec.get('snapshots', []):
                check(f'{at} show_snapshot', lambda: c['snapshots'].show_snapshot(snapshot_id))
                check(
                    f'{at} show_snapshot_metadata',
                    lambda: c['snapshots'].show_snapshot_metadata(snapshot_id),
                )
    volume_base_client.VOLUME_MICROVERSION = None
    # A snapshot's life through the member's client: create (202), update, metadata, delete (202).
    if spec.get('volumes'):
        made = check(
            'volume create_snapshot',
            lambda: member['snapshots'].create_snapshot(volume_id=spec['volumes'][0], name='schema-snap'),
        )
        if made:
            snap_id = made['snapshot']['id']
            check('volume update_snapshot', lambda: member['snapshots'].update_snapshot(snap_id, name='renamed'))
            check(
                'volume create_snapshot_metadata',
                lambda: member['snapshots'].create_snapshot_metadata(snap_id, {'k': 'v'}),
            )
            check(
                'volume update_snapshot_metadata_item',
                lambda: member['snapshots'].update_snapshot_metadata_item(snap_id, 'k', meta={'k': 'w'}),
            )
            check(
                'volume show_snapshot_metadata_item',
                lambda: member['snapshots'].show_snapshot_metadata_item(snap_id, 'k'),
            )
            check(
                'volume delete_snapshot_metadata_item',
                lambda: member['snapshots'].delete_snapshot_metadata_item(snap_id, 'k'),
            )
            for _ in range(300):
                if member['snapshots'].show_snapshot(snap_id)['snapshot']['status'] != 'creating':
                    break
                time.sleep(0.05)
            check('volume delete_snapshot', lambda: member['snapshots'].delete_snapshot(snap_id))

    print(json.dumps({'checked': checked, 'failures': failures}))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
