export {
  DHCP_DEVICE_OWNER,
  Neutron,
  type NeutronOptions,
  type CreateNetworkRequest,
  type CreateSubnetRequest,
} from './neutron';
export type { CreatePortRequest, ListPortsFilter, PortBinding, SubnetIpAvailability } from './neutron';
export type * from './types';
export { MAC_PATTERN } from './mac';
export type {
  CreateSecurityGroupRequest,
  CreateSecurityGroupRuleRequest,
  GroupScope,
  SecurityGroupChanges,
  UpdateSecurityGroupRequest,
} from './security-group-changes';
export { MAX_TAGS, type ResourceTags, type TaggedCollection } from './tags';
export { MAX_ALLOWED_ADDRESS_PAIRS } from './address-pairs';
export {
  FLOATING_IP_OWNER,
  ROUTER_GATEWAY_OWNER,
  ROUTER_INTERFACE_OWNER,
  type FloatingIp,
  type Router,
  type RouterInterfaceInfo,
  type GatewayRequest,
} from './l3';
