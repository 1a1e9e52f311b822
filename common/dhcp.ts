/**
 * What a DHCP agent serves on a network: its DHCP-enabled IPv4 subnet and the network's DHCP port. neutron-server
 * hands it out with each bound port; the compute host's agent wires the network from it.
 */
export interface DhcpDetails {
  networkId: string;
  subnetId: string;
  cidr: string;
  gatewayIp: string | null;
  mtu: number;
  dhcpPortId: string;
  dhcpMacAddress: string;
  dhcpIpAddress: string;
}
