process SCLATENT_AESAMPLING {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/environment.yml"
    // the image is built from environment.yml (Seqera Wave) once sclatent is released on PyPI
    container "${ workflow.containerEngine == 'singularity' && !task.ext.singularity_pull_docker_container ?
        'oras://community.wave.seqera.io/library/pip_sclatent:0.1.0' :
        'community.wave.seqera.io/library/pip_sclatent:0.1.0' }"

    input:
    tuple val(meta), path(h5ad)

    output:
    tuple val(meta), path("${prefix}.h5ad"), emit: h5ad
    path "versions.yml"                  , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    prefix = task.ext.prefix ?: "${meta.id}_aesampling"
    template 'aesampling.py'

    stub:
    prefix = task.ext.prefix ?: "${meta.id}_aesampling"
    """
    touch ${prefix}.h5ad
    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        sclatent: 0.1.0
    END_VERSIONS
    """
}
