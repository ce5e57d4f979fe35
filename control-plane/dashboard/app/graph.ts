/**
 * The topology graph: zones hold their services' sidecars and their gateways; services are
 * joined by their traffic (from the callers' reports), sidecars by their links (with RTT),
 * gateways by theirs. Drawn with cytoscape; laid out again only when the set of elements
 * changes, so live numbers do not make the picture jump.
 */
import cytoscape from 'cytoscape';
import type { MeshView } from '../view-types.js';
import { formatMs, formatRate } from './dom.js';

const STYLE: cytoscape.StylesheetJson = [
  { selector: 'node', style: { label: 'data(label)', 'font-size': 11, 'text-wrap': 'wrap', color: '#1d2733', 'text-valign': 'center', 'text-halign': 'center' } },
  { selector: '.zone', style: { 'background-color': '#f3f6fa', 'border-color': '#9aa9bb', 'border-width': 1, 'text-valign': 'top', 'font-weight': 'bold', shape: 'round-rectangle' } },
  { selector: '.service', style: { 'background-color': '#e4eefb', 'border-color': '#3d6fb6', 'border-width': 2, shape: 'round-rectangle', width: 'label', height: 'label', padding: '8px', 'font-weight': 'bold' } },
  { selector: '.sidecar', style: { 'background-color': '#3d6fb6', width: 18, height: 18, 'font-size': 9, 'text-valign': 'bottom', 'text-margin-y': 3 } },
  { selector: '.sidecar.unhealthy', style: { 'background-color': '#c9372c' } },
  { selector: '.sidecar.disconnected', style: { 'background-color': '#9aa9bb' } },
  { selector: '.gateway', style: { shape: 'diamond', 'background-color': '#7a4fb0', width: 26, height: 26, 'text-valign': 'bottom', 'text-margin-y': 3, 'font-size': 10 } },
  { selector: 'edge', style: { 'curve-style': 'bezier', 'font-size': 10, 'text-background-color': '#ffffff', 'text-background-opacity': 0.85, 'text-background-padding': '2px' } },
  { selector: '.traffic', style: { label: 'data(label)', width: 'data(width)', 'line-color': '#2f8f5b', 'target-arrow-color': '#2f8f5b', 'target-arrow-shape': 'triangle' } },
  { selector: '.traffic.failing', style: { 'line-color': '#c9372c', 'target-arrow-color': '#c9372c' } },
  { selector: '.link', style: { label: 'data(label)', width: 1, 'line-style': 'dashed', 'line-color': '#8895a7', 'font-size': 8, color: '#5b6778', 'text-rotation': 'autorotate' } },
  { selector: '.instance', style: { width: 1, 'line-color': '#b7c6d9' } },
  { selector: '.gateway-link', style: { width: 2, 'line-style': 'dotted', 'line-color': '#7a4fb0' } },
];

/**
 * Force-directed inside the zones. Services are plain nodes with their sidecars around them:
 * nesting sidecars inside service nodes as well made the layout spread them apart.
 */
const LAYOUT: cytoscape.CoseLayoutOptions = {
  name: 'cose',
  animate: false,
  randomize: true,
  nodeDimensionsIncludeLabels: true,
  padding: 24,
  componentSpacing: 60,
  nodeRepulsion: () => 40_000,
  nodeOverlap: 20,
  idealEdgeLength: (edge) => (edge.hasClass('instance') ? 40 : 120),
  edgeElasticity: () => 100,
  nestingFactor: 1,
  gravity: 1,
  numIter: 1500,
};
/** A picture of a few nodes is not blown up past this zoom when fitted. */
const MAX_FIT_ZOOM = 1.6;

export class TopologyGraph {
  readonly #cy: cytoscape.Core;
  readonly #summary: HTMLElement;
  #shape = '';

  constructor(container: HTMLElement, summary: HTMLElement) {
    this.#cy = cytoscape({ container, style: STYLE, wheelSensitivity: 0.3, minZoom: 0.2, maxZoom: 3 });
    this.#summary = summary;
    new ResizeObserver(() => this.#cy.resize()).observe(container);
  }

  update(view: MeshView): void {
    const elements = elementsOf(view);
    const ids = new Set(elements.map((e) => e.data.id ?? ''));
    this.#cy.batch(() => {
      this.#cy.elements().forEach((element) => {
        if (!ids.has(element.id())) element.remove();
      });
      for (const definition of elements) {
        const existing = this.#cy.getElementById(definition.data.id ?? '');
        if (existing.nonempty()) {
          existing.data(definition.data);
          existing.classes(definition.classes ?? '');
        } else {
          this.#cy.add(definition);
        }
      }
    });
    const shape = [...ids].sort().join(' ');
    if (shape !== this.#shape) {
      this.#shape = shape;
      this.#cy.layout(LAYOUT).run();
      this.#cy.fit(undefined, 24);
      if (this.#cy.zoom() > MAX_FIT_ZOOM) {
        this.#cy.zoom(MAX_FIT_ZOOM);
        this.#cy.center();
      }
    }
    this.#summarize(view);
  }

  /** A text account of the graph, for screen readers (and anyone who cannot read a canvas). */
  #summarize(view: MeshView): void {
    const lines = [
      ...view.services.map((s) => `service ${s.name}: ${s.endpoints.map((e) => e.sidecarId).join(', ') || 'no endpoints'}`),
      ...view.gateways.map((g) => `gateway ${g.zone}/${g.name}${g.links.length > 0 ? ` linked to ${g.links.join(', ')}` : ''}`),
      ...view.edges.map((e) => `traffic ${e.from} → ${e.to}: ${formatRate(e.connectionsPerSecond)} conn/s, ${e.active} open, ${e.failed} failed`),
    ];
    this.#summary.replaceChildren(...lines.map((line) => Object.assign(document.createElement('li'), { textContent: line })));
    this.#summary.dataset.nodes = String(this.#cy.nodes().length);
    this.#summary.dataset.edges = String(this.#cy.edges().length);
  }
}

function elementsOf(view: MeshView): cytoscape.ElementDefinition[] {
  const elements: cytoscape.ElementDefinition[] = [];
  for (const zone of view.zones) elements.push({ data: { id: `zone:${zone}`, label: `zone ${zone}` }, classes: 'zone' });
  const serviceIds = new Set<string>();
  for (const service of view.services) {
    const onlyZone = service.zones.length === 1 ? service.zones[0] : undefined;
    const label = service.connectionsPerSecond > 0 ? `${service.name}\n${formatRate(service.connectionsPerSecond)} conn/s` : service.name;
    elements.push({ data: { id: `svc:${service.name}`, label, ...(onlyZone === undefined ? {} : { parent: `zone:${onlyZone}` }) }, classes: 'service' });
    serviceIds.add(`svc:${service.name}`);
  }
  const sidecarIds = new Set<string>();
  for (const sidecar of view.sidecars) {
    const classes = ['sidecar', sidecar.healthy ? '' : 'unhealthy', sidecar.connected ? '' : 'disconnected'].join(' ').trim();
    const zone = `zone:${sidecar.zone}`;
    elements.push({ data: { id: `sc:${sidecar.sidecarId}`, label: sidecar.sidecarId, parent: zone }, classes });
    elements.push({ data: { id: `instance:${sidecar.sidecarId}`, source: `svc:${sidecar.service}`, target: `sc:${sidecar.sidecarId}` }, classes: 'instance' });
    sidecarIds.add(sidecar.sidecarId);
  }
  const gatewayIds = new Set<string>();
  for (const gateway of view.gateways) {
    elements.push({ data: { id: `gw:${gateway.zone}/${gateway.name}`, label: `${gateway.name}`, parent: `zone:${gateway.zone}` }, classes: 'gateway' });
    gatewayIds.add(`${gateway.zone}/${gateway.name}`);
  }
  for (const edge of view.edges) {
    if (!serviceIds.has(`svc:${edge.from}`) || !serviceIds.has(`svc:${edge.to}`)) continue;
    const width = Math.min(8, 1.5 + Math.log2(1 + edge.connectionsPerSecond));
    const label = `${formatRate(edge.connectionsPerSecond)} conn/s${edge.failed > 0 ? ` · ${edge.failed} failed` : ''}`;
    elements.push({ data: { id: `traffic:${edge.from}>${edge.to}`, source: `svc:${edge.from}`, target: `svc:${edge.to}`, label, width }, classes: edge.failed > 0 ? 'traffic failing' : 'traffic' });
  }
  for (const link of view.links) {
    if (!sidecarIds.has(link.fromSidecarId) || !sidecarIds.has(link.toSidecarId)) continue;
    elements.push({ data: { id: `link:${link.fromSidecarId}>${link.toSidecarId}`, source: `sc:${link.fromSidecarId}`, target: `sc:${link.toSidecarId}`, label: formatMs(link.rttMs) }, classes: 'link' });
  }
  for (const gateway of view.gateways) {
    for (const peer of gateway.links) {
      const from = `${gateway.zone}/${gateway.name}`;
      // One edge per pair, whichever end reported it.
      if (!gatewayIds.has(peer) || from > peer) continue;
      elements.push({ data: { id: `gwlink:${from}|${peer}`, source: `gw:${from}`, target: `gw:${peer}` }, classes: 'gateway-link' });
    }
  }
  return elements;
}
